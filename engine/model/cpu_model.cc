#include "engine/model/cpu_model.h"

#include <algorithm>

#include "base/error.h"
#include "cpu/bf16_gemm.h"
#include "cpu/gemm.h"
#include "cpu/ops.h"
#include "cpu/threads.h"
#include "engine/model/forward.h"

namespace musiq {
namespace {

// The device of engine/model/forward.h on the CPU: cpu/ops.h as it is.
struct CpuOps {
  // Tokens through the stem at once, then through the embedding's GEMM, which reads its
  // 25 MB of weights once per chunk: 256 makes a 224x224 photo (242 tokens) one GEMM, not
  // four, about 6% off its model pass; larger photos move by 2% or less against 64.
  static constexpr int64_t kStemChunk = 256;
  static constexpr int64_t kStemTile = 4;  // tiles of 2 or 1 tokens were no faster

  // Tiles of tokens go through the whole stem on one thread each, with that thread's own
  // scratch (kept across calls, 1.3 MB: mostly in its core's L2) and no barrier between the
  // stem's ops: inside the parallel loop the ops' own loops, the GEMM's included, run on the
  // tile's thread (cpu/parallel_for.h).
  template <typename F> void stem_tiles(const Workspace&, int64_t count, F&& f) {
#pragma omp parallel
    {
      thread_local std::vector<float> scratch;
      scratch.resize(size_t(kStemTile * kStemScratchPerToken));
      const StemScratch s = stem_scratch_at(scratch.data(), kStemTile);
#pragma omp for schedule(dynamic)
      for (int64_t first = 0; first < count; first += kStemTile)
        f(first, std::min(kStemTile, count - first), s);
    }
  }

  ThreadBudget& threads;
  Precision precision;
  // Under bf16 on a bf16 kernel: each kernel's tiles (cpu/bf16_gemm.h) by its packed float32
  // form.
  const Bf16Kernels& bf16_kernels;

  const uint16_t* bf16_tiles(const float* packed, Precision p) const {
    if (p != Precision::kBf16) return nullptr;
    const auto found = bf16_kernels.find(packed);
    return found == bf16_kernels.end() ? nullptr : found->second.data();
  }

  // Each stage starts with as many threads as other processes leave cores free.
  struct NoRange {};
  NoRange range(const char*) {
    cpu::set_threads(threads.next());
    return {};
  }
  void copy(float* dst, const float* src, int64_t count) { std::copy_n(src, count, dst); }
  // forward.h's convolution kernels: packed by CpuModel's constructor.
  void conv2d(const float* in, const Conv2dShape& shape, const float* packed_kernel,
              float* columns, float* out, Precision p) {
    if (const uint16_t* tiles = bf16_tiles(packed_kernel, p))
      return cpu::conv2d_bf16(in, shape, tiles, columns, out);
    cpu::conv2d_packed(in, shape, packed_kernel, columns, out, p);
  }
  void group_norm(float* x, int n, int hw, int c, int groups, const float* scale,
                  const float* bias, float eps, bool relu) {
    cpu::group_norm(x, n, hw, c, groups, scale, bias, eps, relu);
  }
  void max_pool_3x3_s2(const float* in, int n, int h, int w, int c, int out_h, int out_w,
                       float* out) {
    cpu::max_pool_3x3_s2(in, n, h, w, c, out_h, out_w, out);
  }
  void add_relu(float* x, const float* residual, int64_t count) {
    cpu::add_relu(x, residual, count);
  }
  // forward.h's Dense kernels: packed by CpuModel's constructor.
  void linear(const float* a, int64_t m, int k, const float* packed_b, int n, const float* bias,
              Epilogue epilogue, float* out, Precision p) {
    if (const uint16_t* tiles = bf16_tiles(packed_b, p))
      return cpu::linear_bf16(a, m, k, tiles, n, bias, epilogue, out);
    cpu::linear_packed(a, m, k, packed_b, n, bias, epilogue, out, p);
  }
  void layer_norm(const float* x, int64_t rows, int dim, const float* scale, const float* bias,
                  float eps, float* out) {
    cpu::layer_norm(x, rows, dim, scale, bias, eps, out);
  }
  void add_embeddings(float* x, int64_t rows, int dim, const int32_t* spatial,
                      const int32_t* scale_id, const float* pos_table, const float* scale_table) {
    cpu::add_embeddings(x, rows, dim, spatial, scale_id, pos_table, scale_table);
  }
  void attention(const float* qkv, const PackedBatch& batch, int heads, int head_dim,
                 Queries queries, float* out, Precision p) {
    cpu::attention(qkv, batch.starts.data(), batch.batch(), heads, head_dim, queries, out, p);
  }
  void head_scores(const float* logits, int images, int classes, float* scores) {
    for (int i = 0; i < images; ++i) scores[i] = cpu::head_score(logits + int64_t{i} * classes, classes);
  }
};

}  // namespace

CpuModel::CpuModel(ModelWeights weights, Precision precision)
    : w_(std::move(weights)), params_(w_.host()), precision_(precision),
      threads_(cpu::max_threads()) {
  // Each Dense kernel [k, n] and convolution kernel (HWIO read as [kh*kw*cin, cout])
  // repacked once for cpu::linear_packed and conv2d_packed: in place where the packed form
  // is as large (n a multiple of 16), else (the head's few classes) beside. Under bf16 or
  // tf32 they are rounded first, the head's excepted (docs/precision.md), and for a bf16
  // kernel also packed into its tiles.
  const float* head = params_.head_kernel;
  const bool tiled = precision == Precision::kBf16 && cpu::bf16::tiled();
  for_each_param(params_, w_.config, [&](const float*& weights, const ParamField& field) {
    if (field.kind == ParamKind::kValues) return;
    const int n = static_cast<int>(field.shape.back());
    const int k = static_cast<int>(element_count(field.shape) / n);
    float* raw = w_.block.data() + (weights - w_.block.data());
    const bool rounded = precision != Precision::kFp32 && weights != head;
    if (rounded) cpu::round_product_inputs(precision, raw, int64_t{k} * n, raw);
    std::vector<uint16_t> tiles;
    if (rounded && tiled) {
      tiles.resize(size_t(cpu::bf16::packed_count(k, n)));
      cpu::bf16::pack(raw, k, n, n, 1, tiles.data());
    }
    std::vector<float> packed(size_t(cpu::packed_floats(k, n)));
    cpu::pack_columns(raw, k, n, n, packed.data());
    if (packed.size() == size_t(k) * size_t(n)) {
      std::copy(packed.begin(), packed.end(), raw);
    } else {
      packed_beside_.push_back(std::move(packed));
      weights = packed_beside_.back().data();
    }
    if (!tiles.empty()) bf16_kernels_.emplace(weights, std::move(tiles));
  });
}

float CpuModel::score(const Tokens& tokens) {
  const Tokens* one[] = {&tokens};
  return score_batch(one)[0];
}

std::vector<float> CpuModel::score_batch(std::span<const Tokens* const> images) {
  const ModelConfig& c = w_.config;
  PackedBatch batch;
  std::vector<int64_t> counts;
  for (const Tokens* t : images) {
    if (t->patch_values != c.patch_values() ||
        int64_t(t->patches.size()) != t->count() * c.patch_values() ||
        int64_t(t->scale_id.size()) != t->count())
      throw Error("CpuModel: tokens do not match the model's patch size");
    batch.images.push_back({t->patches.data(), t->spatial.data(), t->scale_id.data(), t->count()});
    counts.push_back(t->count());
  }
  batch.starts = sequence_starts(counts);
  batch.device_starts = batch.starts.data();
  const WorkspaceLayout layout(c, {batch.rows(), batch.batch(), CpuOps::kStemChunk, false, false});
  if (int64_t(workspace_.size()) < layout.total_floats()) workspace_.resize(layout.total_floats());
  const Workspace ws = layout.at(workspace_.data());
  CpuOps ops{threads_, precision_, bf16_kernels_};
  forward(ops, c, params_, ws, batch);
  return std::vector<float>(ws.scores, ws.scores + batch.batch());
}

}  // namespace musiq
