// The CPU rows of bench/op_rows.h (every op of cpu/ops.h at MUSIQ's shapes), plus the
// peak rows to read them against: peak/sgemm_openblas (OpenBLAS on a large square GEMM),
// peak/sgemm_ours (cpu/gemm.h on the same shape, b packed beforehand: the best FLOP/s our
// kernels reach, what the model's GEMMs are read against) and peak/triad (STREAM triad, the
// memory bandwidth); and attention over all queries at bf16 (encoder/attention_bf16/...).
// Each row has FLOP/s and bytes/s counters (kIsIterationInvariantRate). Real time
// throughout: the ops run OpenMP and OpenBLAS threads.
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "base/precision.h"
#include "base/resize_plan.h"
#include "bench/op_rows.h"
#include "bench/rate_counters.h"
#include "cpu/gemm.h"
#include "cpu/ops.h"
#include "weights/config.h"

namespace musiq::bench {
namespace {

using Op = std::function<void()>;

// b [k, n] packed for linear_packed and conv2d_packed.
std::vector<float> packed(const std::vector<float>& b, int k, int n) {
  std::vector<float> out(static_cast<size_t>(cpu::packed_floats(k, n)));
  cpu::pack_columns(b.data(), k, n, n, out.data());
  return out;
}

// Registers a row. `setup` builds the inputs (untimed) and returns the op to time.
void add_row(const std::string& name, double flops, double bytes, std::function<Op()> setup) {
  benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& state) {
    Op op = setup();
    for (auto _ : state) {
      op();
      benchmark::ClobberMemory();
    }
    set_rate_counters(state, flops, bytes);
  })->UseRealTime()->Unit(benchmark::kMicrosecond);
}

void add_peak_rows() {
  constexpr int n = 2048;
  add_row("peak/sgemm_openblas/2048", 2.0 * n * n * n, 3.0 * n * n * 4, [] {
    return [a = random_floats(int64_t{n} * n), b = random_floats(int64_t{n} * n, 1.0f, 7),
            c = std::vector<float>(int64_t{n} * n)]() mutable {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a.data(), n,
                  b.data(), n, 0.0f, c.data(), n);
    };
  });
  add_row("peak/sgemm_ours/2048", 2.0 * n * n * n, 3.0 * n * n * 4, [] {
    return [a = random_floats(int64_t{n} * n),
            b = packed(random_floats(int64_t{n} * n, 1.0f, 7), n, n),
            c = std::vector<float>(int64_t{n} * n)]() mutable {
      cpu::gemm(a.data(), n, n, b.data(), n, nullptr, false, false, c.data(), n);
    };
  });
  // a = b + s * c over 64 MiB arrays (far past the L3): 2 FLOP and 12 bytes per element.
  constexpr int64_t count = int64_t{16} << 20;
  add_row("peak/triad/16Mi_floats", 2.0 * count, 12.0 * count, [=] {
    return [=, a = std::vector<float>(count), b = random_floats(count),
            c = random_floats(count, 1.0f, 7)]() mutable {
      float* pa = a.data();
      const float *pb = b.data(), *pc = c.data();
#pragma omp parallel for schedule(static)
      for (int64_t i = 0; i < count; ++i) pa[i] = pb[i] + 0.5f * pc[i];
    };
  });
}

// The op of one row on host buffers of seeded random values, at `precision` where the op
// takes one.
struct MakeCpuOp {
  Precision precision = Precision::kFp32;

  Op operator()(const NormalizeCall& c) const {
    return [c, rgb = random_bytes(c.count), out = std::vector<float>(c.count)]() mutable {
      cpu::normalize_image(rgb.data(), c.count, out.data());
    };
  }
  Op operator()(const ResizeCall& c) const {
    const ResizePlan rows = gaussian_resize_plan(c.in_h, c.out_h);
    const ResizePlan cols = gaussian_resize_plan(c.in_w, c.out_w);
    return [=, in = random_floats(int64_t{c.in_h} * c.in_w * 3),
            tmp = std::vector<float>(int64_t{c.out_h} * c.in_w * 3),
            out = std::vector<float>(int64_t{c.out_h} * c.out_w * 3)]() mutable {
      cpu::gaussian_resize(in.data(), c.in_h, c.in_w, 3, rows, cols, tmp.data(), out.data());
    };
  }
  Op operator()(const PatchesCall& c) const {
    const ScaleGeometry& g = c.geometry;
    return [=, img = random_floats(int64_t{c.height} * c.width * 3),
            out = std::vector<float>(int64_t{g.count_h} * g.count_w * 32 * 32 * 3)]() mutable {
      cpu::extract_patches(img.data(), c.height, c.width, 32, g.count_h, g.count_w, g.pad_top,
                           g.pad_left, out.data());
    };
  }
  Op operator()(const ConvCall& c) const {
    const int64_t columns = int64_t{c.n} * c.out_hw * c.out_hw * c.k * c.k * c.cin;
    // The kernel packed once, as the CPU model packs it when it loads.
    const int k = c.k * c.k * c.cin;
    return [=, in = random_floats(int64_t{c.n} * c.in_hw * c.in_hw * c.cin),
            kernel = packed(random_floats(int64_t{k} * c.cout, 1.0f / std::sqrt(float(k)), 7),
                            k, c.cout),
            cols = std::vector<float>(c.k == 1 ? 0 : columns),
            out = std::vector<float>(int64_t{c.n} * c.out_hw * c.out_hw * c.cout)]() mutable {
      cpu::conv2d_packed(in.data(), c.shape(), kernel.data(), c.k == 1 ? nullptr : cols.data(),
                         out.data());
    };
  }
  Op operator()(const GroupNormCall& c) const {
    return [=, x = random_floats(int64_t{c.n} * c.hw * c.c), scale = random_floats(c.c, 0.1f, 7),
            bias = random_floats(c.c, 0.1f, 8)]() mutable {
      cpu::group_norm(x.data(), c.n, c.hw, c.c, kStemGroups, scale.data(), bias.data(), c.eps,
                      c.relu);
    };
  }
  Op operator()(const MaxPoolCall& c) const {
    return [=, in = random_floats(int64_t{c.n} * c.in_hw * c.in_hw * c.c),
            out = std::vector<float>(int64_t{c.n} * c.out_hw * c.out_hw * c.c)]() mutable {
      cpu::max_pool_3x3_s2(in.data(), c.n, c.in_hw, c.in_hw, c.c, c.out_hw, c.out_hw,
                           out.data());
    };
  }
  Op operator()(const AddReluCall& c) const {
    return [=, x = random_floats(c.count), r = random_floats(c.count, 1.0f, 7)]() mutable {
      cpu::add_relu(x.data(), r.data(), c.count);
    };
  }
  Op operator()(const LinearCall& c) const {
    // The weights packed once, as the CPU model packs them when it loads.
    return [=, a = random_floats(c.m * c.k),
            b = packed(random_floats(int64_t{c.k} * c.n, 1.0f / std::sqrt(float(c.k)), 7), c.k,
                       c.n),
            bias = random_floats(c.n, 0.02f, 8), out = random_floats(c.m * c.n, 1.0f, 9)]() mutable {
      cpu::linear_packed(a.data(), c.m, c.k, b.data(), c.n, bias.data(), c.epilogue,
                         out.data());
    };
  }
  Op operator()(const LayerNormCall& c) const {
    return [=, x = random_floats(c.rows * c.dim), scale = random_floats(c.dim, 0.1f, 7),
            bias = random_floats(c.dim, 0.1f, 8),
            out = std::vector<float>(c.rows * c.dim)]() mutable {
      cpu::layer_norm(x.data(), c.rows, c.dim, scale.data(), bias.data(), kLayerNormEps,
                      out.data());
    };
  }
  Op operator()(const EmbeddingsCall& c) const {
    const ModelConfig config;
    return [=, idx = embedding_indices(c.rows), x = random_floats(c.rows * c.dim),
            pos = random_floats(int64_t{config.hse_grid_size} * config.hse_grid_size * c.dim,
                                0.02f, 7),
            scl = random_floats(int64_t{config.num_scales()} * c.dim, 0.02f, 8)]() mutable {
      cpu::add_embeddings(x.data(), c.rows, c.dim, idx.spatial.data(), idx.scale_id.data(),
                          pos.data(), scl.data());
    };
  }
  Op operator()(const AttentionCall& c) const {
    const ModelConfig config;
    return [=, precision = precision, qkv = random_floats(c.len * 3 * config.hidden_size),
            out = std::vector<float>(c.q_rows * config.hidden_size)]() mutable {
      const int64_t starts[] = {0, c.len};
      cpu::attention(qkv.data(), starts, 1, config.num_heads, config.head_dim(),
                     c.q_rows == 1 ? Queries::kFirst : Queries::kAll, out.data(), precision);
    };
  }
  Op operator()(const HeadScoreCall& c) const {
    return [=, logits = random_floats(c.classes)]() mutable {
      benchmark::DoNotOptimize(cpu::head_score(logits.data(), c.classes));
    };
  }
};

[[maybe_unused]] const bool registered = [] {
  add_peak_rows();
  const std::string attention = "encoder/attention/";
  for (const OpRow& row : musiq_op_rows()) {
    add_row(row.name, row.flops, row.bytes,
            [call = row.call] { return std::visit(MakeCpuOp{}, call); });
    // Attention over all queries also at bf16 (on the kernel bf16::kernel() picks), as
    // encoder/attention_bf16/<photo>/L<len>.
    if (row.name.starts_with(attention))
      add_row("encoder/attention_bf16/" + row.name.substr(attention.size()), row.flops,
              row.bytes,
              [call = row.call] { return std::visit(MakeCpuOp{Precision::kBf16}, call); });
  }
  return true;
}();

}  // namespace
}  // namespace musiq::bench
