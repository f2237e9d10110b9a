// Every op of cpu/ops.h (and its GPU twin in kernels/ops.cuh) at the shapes MUSIQ runs it
// on, as a list of rows that the CPU and GPU benchmark files both register, so that a
// row's name, shape and cost are defined once and the two devices read side by side:
//  - preprocessing (normalize, Gaussian resize, patch extraction) for the four photos of
//    bench/photos.h;
//  - the patch stem on 64 tokens at once, one row per layer (the CPU model now runs the
//    stem in tiles of 4 tokens per thread within chunks of 256, the GPU in chunks of 512:
//    these rows time each op at one fixed size, not the model's schedule);
//  - the encoder at each photo's sequence length L (real tokens of every scale, padding
//    dropped as the engine does, CLS included), plus L = 50, the 224 scale alone
//    (49 + 1), and the rows of the last block, where only the CLS query is computed.
// FLOPs count multiplies and adds separately (a GEMM is 2*m*k*n); non-GEMM ops count
// their arithmetic per element as stated in op_rows.cc. Bytes are the compulsory traffic:
// each input read once, each output written once, not what an implementation moves
// (im2col columns, attention score blocks, the resize's intermediate).
#pragma once
#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "base/conv2d_shape.h"
#include "cpu/ops.h"
#include "engine/preprocess/preprocess.h"

namespace musiq::bench {

inline constexpr uint32_t kSeed = 20261125;
inline constexpr int kStemChunk = 64;  // tokens of the stem rows

// The arguments of one call, per op; buffers are made by each device's bench file.
struct NormalizeCall { int64_t count; };
struct ResizeCall { int in_h, in_w, out_h, out_w; };
struct PatchesCall { int height, width; ScaleGeometry geometry; };
struct ConvCall {
  int n, in_hw, cin, k, cout, stride, pad, out_hw;
  Conv2dShape shape() const {
    return {.batch = n, .height = in_hw, .width = in_hw, .in_channels = cin, .kernel = k,
            .stride = stride, .pad_top = pad, .pad_left = pad, .out_channels = cout,
            .out_height = out_hw, .out_width = out_hw};
  }
};
struct GroupNormCall { int n, hw, c; float eps; bool relu; };
struct MaxPoolCall { int n, in_hw, c, out_hw; };
struct AddReluCall { int64_t count; };
struct LinearCall { int64_t m; int k, n; Epilogue epilogue; };
struct LayerNormCall { int64_t rows; int dim; };
struct EmbeddingsCall { int64_t rows; int dim; };
struct AttentionCall { int64_t len, q_rows; };
struct HeadScoreCall { int classes; };

using OpCall = std::variant<NormalizeCall, ResizeCall, PatchesCall, ConvCall, GroupNormCall,
                            MaxPoolCall, AddReluCall, LinearCall, LayerNormCall, EmbeddingsCall,
                            AttentionCall, HeadScoreCall>;

struct OpRow {
  std::string name;  // e.g. "encoder/qkv/1024x768/L919"
  double flops;      // per call; 0 for pure data movement
  double bytes;      // compulsory traffic per call
  OpCall call;
};

// All rows, in a fixed order.
std::vector<OpRow> musiq_op_rows();

// SplitMix64's output function (Steele, Lea and Flood, 2014): a well-mixed 64-bit hash of
// a counter.
inline uint64_t mix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Seeded values of mean 0 and standard deviation `stddev`, bell-shaped (the sum of four
// 16-bit uniforms from one hash: |x| < 3.47 stddev), element i from a hash of (seed, i):
// the same for any thread count, and cheap. The work of every op is independent of the
// values; the GPU rows build their inputs inside the timed row's budget, and
// std::normal_distribution took ~110 ns a value on a 2-core AMD EPYC VM (134 M values
// for gpu/peak/sgemm_cublas/8192 alone).
inline std::vector<float> random_floats(int64_t n, float stddev = 1.0f, uint32_t seed = kSeed) {
  std::vector<float> v(static_cast<size_t>(n));
  const float scale = stddev * 1.7320508f / 65536.0f;  // sqrt(12 / 4): unit variance
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const uint64_t h = mix64((uint64_t{seed} << 40) ^ uint64_t(i));
    const float sum = float(h & 0xFFFF) + float((h >> 16) & 0xFFFF) +
                      float((h >> 32) & 0xFFFF) + float(h >> 48);
    v[size_t(i)] = (sum - 131070.0f) * scale;  // 4 * 65535 / 2: the mean
  }
  return v;
}

inline std::vector<uint8_t> random_bytes(int64_t n) {
  std::vector<uint8_t> v(static_cast<size_t>(n));
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) v[size_t(i)] = static_cast<uint8_t>(mix64(uint64_t(i)) >> 56);
  return v;
}

// Embedding lookups of `rows` tokens spread over the whole tables, as a photo's are.
struct EmbeddingIndices {
  std::vector<int32_t> spatial, scale_id;
};
EmbeddingIndices embedding_indices(int64_t rows);

}  // namespace musiq::bench
