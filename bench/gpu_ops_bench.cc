// The GPU rows of bench/op_rows.h: every kernel of kernels/ops.cuh at MUSIQ's shapes,
// named "gpu/" + the CPU row's name so the two read side by side, plus the peak rows to
// read them against: gpu/peak/sgemm_cublas (FP32 SGEMM, TF32 off, as our GEMMs run) and
// gpu/peak/copy (device-to-device copy, the memory bandwidth).
// Each call is timed alone with CUDA events on one stream (manual time), after a memset
// of twice the L2 size, so every row is a cold-L2 call: an upper bound on what the op
// costs inside the model, where the previous op often leaves its output in L2.
// Without a usable device the only row is gpu/unavailable, skipped with the reason.
#include <benchmark/benchmark.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cmath>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "bench/op_rows.h"
#include "bench/rate_counters.h"
#include "engine/config.h"
#include "engine/device.h"
#include "engine/error.h"
#include "engine/resize_plan.h"
#include "kernels/cuda_check.h"
#include "kernels/device_array.h"
#include "kernels/ops.cuh"

namespace musiq::bench {
namespace {

using cuda::DeviceArray;

// One stream, cuBLAS handle, pair of events and L2-flush buffer for every row.
struct GpuBench {
  cudaStream_t stream = nullptr;
  cublasHandle_t blas = nullptr;
  cudaEvent_t start = nullptr, stop = nullptr;
  DeviceArray<unsigned char> flush;

  GpuBench() {
    CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    blas = cuda::make_blas_handle();
    cuda::check_cublas(cublasSetStream(blas, stream), "cublasSetStream");
    CUDA_CHECK(cudaEventCreate(&start));
    CUDA_CHECK(cudaEventCreate(&stop));
    int device = 0, l2_bytes = 0;
    CUDA_CHECK(cudaGetDevice(&device));
    CUDA_CHECK(cudaDeviceGetAttribute(&l2_bytes, cudaDevAttrL2CacheSize, device));
    flush.allocate(2 * static_cast<size_t>(l2_bytes), "the L2 flush buffer");
  }
  static GpuBench& get() {
    static GpuBench bench;  // lives until exit; the driver reclaims it
    return bench;
  }
};

using GpuOp = std::function<void(GpuBench&)>;

// Device copies of host vectors, kept alive by the op that uses them.
template <typename T>
std::shared_ptr<DeviceArray<T>> upload(const std::vector<T>& host) {
  return std::make_shared<DeviceArray<T>>(host, "a benchmark input");
}
template <typename T>
std::shared_ptr<DeviceArray<T>> scratch(int64_t count) {
  auto a = std::make_shared<DeviceArray<T>>();
  a->allocate(static_cast<size_t>(count), "a benchmark output");
  return a;
}

void add_row(const std::string& name, double flops, double bytes, std::function<GpuOp()> setup) {
  benchmark::RegisterBenchmark(("gpu/" + name).c_str(), [=](benchmark::State& state) {
    try {
      GpuBench& gpu = GpuBench::get();
      const GpuOp op = setup();
      op(gpu);  // warm-up: first-launch costs stay out of the timing
      CUDA_CHECK(cudaStreamSynchronize(gpu.stream));
      unsigned char fill = 0;
      for (auto _ : state) {
        CUDA_CHECK(cudaMemsetAsync(gpu.flush.get(), fill++, gpu.flush.size(), gpu.stream));
        CUDA_CHECK(cudaEventRecord(gpu.start, gpu.stream));
        op(gpu);
        CUDA_CHECK(cudaEventRecord(gpu.stop, gpu.stream));
        CUDA_CHECK(cudaEventSynchronize(gpu.stop));
        float ms = 0;
        CUDA_CHECK(cudaEventElapsedTime(&ms, gpu.start, gpu.stop));
        state.SetIterationTime(ms / 1e3);
      }
    } catch (const Error& e) {
      state.SkipWithError(e.what());
      return;
    }
    set_rate_counters(state, flops, bytes);
  })->UseManualTime()->Unit(benchmark::kMicrosecond);
}

void add_peak_rows() {
  constexpr int n = 8192;
  add_row("peak/sgemm_cublas/8192", 2.0 * n * n * n, 3.0 * n * n * 4, [] {
    auto a = upload(random_floats(int64_t{n} * n)), b = upload(random_floats(int64_t{n} * n, 1, 7));
    auto c = scratch<float>(int64_t{n} * n);
    return [=](GpuBench& gpu) {
      const float one = 1.0f, zero = 0.0f;
      cuda::check_cublas(cublasSgemm(gpu.blas, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &one,
                                     a->get(), n, b->get(), n, &zero, c->get(), n),
                         "cublasSgemm");
    };
  });
  // Read once, write once: 2 bytes of traffic per byte copied.
  constexpr int64_t bytes = int64_t{1} << 30;
  add_row("peak/copy/1GiB", 0, 2.0 * bytes, [] {
    auto src = scratch<unsigned char>(bytes), dst = scratch<unsigned char>(bytes);
    CUDA_CHECK(cudaMemset(src->get(), 1, bytes));
    return [=](GpuBench& gpu) {
      CUDA_CHECK(cudaMemcpyAsync(dst->get(), src->get(), bytes, cudaMemcpyDeviceToDevice,
                                 gpu.stream));
    };
  });
}

// A resize plan on the device, with the arrays that back it.
struct UploadedPlan {
  std::shared_ptr<DeviceArray<int32_t>> starts;
  std::shared_ptr<DeviceArray<float>> weights;
  cuda::DeviceResizePlan plan;
  explicit UploadedPlan(const ResizePlan& p)
      : starts(upload(p.starts)), weights(upload(p.weights)) {
    plan = {p.in_size, p.out_size, p.span, starts->get(), weights->get()};
  }
};

// The kernel of one row on device buffers of seeded random values.
struct MakeGpuOp {
  GpuOp operator()(const NormalizeCall& c) const {
    auto rgb = upload(random_bytes(c.count));
    auto out = scratch<float>(c.count);
    return [=](GpuBench& g) { cuda::normalize_image(rgb->get(), c.count, out->get(), g.stream); };
  }
  GpuOp operator()(const ResizeCall& c) const {
    const UploadedPlan rows(gaussian_resize_plan(c.in_h, c.out_h));
    const UploadedPlan cols(gaussian_resize_plan(c.in_w, c.out_w));
    auto in = upload(random_floats(int64_t{c.in_h} * c.in_w * 3));
    auto tmp = scratch<float>(int64_t{c.out_h} * c.in_w * 3);
    auto out = scratch<float>(int64_t{c.out_h} * c.out_w * 3);
    return [=](GpuBench& g) {
      cuda::gaussian_resize(in->get(), c.in_h, c.in_w, 3, rows.plan, cols.plan, tmp->get(),
                            out->get(), g.stream);
    };
  }
  GpuOp operator()(const PatchesCall& c) const {
    const ScaleGeometry& geo = c.geometry;
    auto img = upload(random_floats(int64_t{c.height} * c.width * 3));
    auto out = scratch<float>(int64_t{geo.count_h} * geo.count_w * 32 * 32 * 3);
    return [=](GpuBench& g) {
      cuda::extract_patches(img->get(), c.height, c.width, 32, geo.count_h, geo.count_w,
                            geo.pad_top, geo.pad_left, out->get(), g.stream);
    };
  }
  GpuOp operator()(const ConvCall& c) const {
    auto in = upload(random_floats(int64_t{c.n} * c.in_hw * c.in_hw * c.cin));
    auto kernel = upload(random_floats(int64_t{c.k} * c.k * c.cin * c.cout,
                                       1.0f / std::sqrt(float(c.k * c.k * c.cin)), 7));
    auto cols = scratch<float>(c.k == 1 ? 0 : int64_t{c.n} * c.out_hw * c.out_hw * c.k * c.k * c.cin);
    auto out = scratch<float>(int64_t{c.n} * c.out_hw * c.out_hw * c.cout);
    return [=](GpuBench& g) {
      cuda::conv2d(in->get(), c.n, c.in_hw, c.in_hw, c.cin, kernel->get(), c.k, c.k, c.cout,
                   c.stride, c.pad, c.pad, c.out_hw, c.out_hw, cols->get(), out->get(), g.blas,
                   g.stream);
    };
  }
  GpuOp operator()(const GroupNormCall& c) const {
    auto x = upload(random_floats(int64_t{c.n} * c.hw * c.c));
    auto scale = upload(random_floats(c.c, 0.1f, 7)), bias = upload(random_floats(c.c, 0.1f, 8));
    return [=](GpuBench& g) {
      cuda::group_norm(x->get(), c.n, c.hw, c.c, kStemGroups, scale->get(), bias->get(), c.eps,
                       c.relu, g.stream);
    };
  }
  GpuOp operator()(const MaxPoolCall& c) const {
    auto in = upload(random_floats(int64_t{c.n} * c.in_hw * c.in_hw * c.c));
    auto out = scratch<float>(int64_t{c.n} * c.out_hw * c.out_hw * c.c);
    return [=](GpuBench& g) {
      cuda::max_pool_3x3_s2(in->get(), c.n, c.in_hw, c.in_hw, c.c, c.out_hw, c.out_hw,
                            out->get(), g.stream);
    };
  }
  GpuOp operator()(const AddReluCall& c) const {
    auto x = upload(random_floats(c.count)), r = upload(random_floats(c.count, 1.0f, 7));
    return [=](GpuBench& g) { cuda::add_relu(x->get(), r->get(), c.count, g.stream); };
  }
  GpuOp operator()(const LinearCall& c) const {
    auto a = upload(random_floats(c.m * c.k));
    auto b = upload(random_floats(int64_t{c.k} * c.n, 1.0f / std::sqrt(float(c.k)), 7));
    auto bias = upload(random_floats(c.n, 0.02f, 8));
    auto out = upload(random_floats(c.m * c.n, 1.0f, 9));
    return [=](GpuBench& g) {
      cuda::linear(a->get(), c.m, c.k, b->get(), c.n, bias->get(), c.epilogue, out->get(),
                   g.blas, g.stream);
    };
  }
  GpuOp operator()(const LayerNormCall& c) const {
    auto x = upload(random_floats(c.rows * c.dim));
    auto scale = upload(random_floats(c.dim, 0.1f, 7)), bias = upload(random_floats(c.dim, 0.1f, 8));
    auto out = scratch<float>(c.rows * c.dim);
    return [=](GpuBench& g) {
      cuda::layer_norm(x->get(), c.rows, c.dim, scale->get(), bias->get(), kLayerNormEps,
                       out->get(), g.stream);
    };
  }
  GpuOp operator()(const EmbeddingsCall& c) const {
    const ModelConfig config;
    const EmbeddingIndices idx = embedding_indices(c.rows);
    auto spatial = upload(idx.spatial), scale_id = upload(idx.scale_id);
    auto x = upload(random_floats(c.rows * c.dim));
    auto pos = upload(random_floats(int64_t{config.hse_grid_size} * config.hse_grid_size * c.dim,
                                    0.02f, 7));
    auto scl = upload(random_floats(int64_t{config.num_scales()} * c.dim, 0.02f, 8));
    return [=](GpuBench& g) {
      cuda::add_embeddings(x->get(), c.rows, c.dim, spatial->get(), scale_id->get(), pos->get(),
                           scl->get(), g.stream);
    };
  }
  GpuOp operator()(const AttentionCall& c) const {
    const ModelConfig config;
    auto qkv = upload(random_floats(c.len * 3 * config.hidden_size));
    auto out = scratch<float>(c.q_rows * config.hidden_size);
    auto starts = upload(std::vector<int64_t>{0, c.len});
    return [=](GpuBench& g) {
      cuda::attention(qkv->get(), starts->get(), 1, c.len, config.num_heads, config.head_dim(),
                      c.q_rows == 1 ? cpu::Queries::kFirst : cpu::Queries::kAll, out->get(),
                      g.stream);
    };
  }
  GpuOp operator()(const HeadScoreCall& c) const {
    auto logits = upload(random_floats(c.classes));
    auto score = scratch<float>(1);
    return [=](GpuBench& g) { cuda::head_score(logits->get(), 1, c.classes, score->get(), g.stream); };
  }
};

[[maybe_unused]] const bool registered = [] {
  const GpuProbe probe = probe_gpu();
  if (!probe.usable) {
    benchmark::RegisterBenchmark("gpu/unavailable", [problem = probe.problem](benchmark::State& s) {
      s.SkipWithError(problem.c_str());
    });
    return true;
  }
  add_peak_rows();
  for (const OpRow& row : musiq_op_rows())
    add_row(row.name, row.flops, row.bytes,
            [call = row.call] { return std::visit(MakeGpuOp{}, call); });
  return true;
}();

}  // namespace
}  // namespace musiq::bench
