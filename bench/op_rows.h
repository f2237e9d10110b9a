// Every op of cpu/ops.h (and its GPU twin in kernels/ops.cuh) at the shapes MUSIQ runs it
// on, as a list of rows that the CPU and GPU benchmark files both register, so that a
// row's name, shape and cost are defined once and the two devices read side by side:
//  - preprocessing (normalize, Gaussian resize, patch extraction) for the four photos of
//    bench/photos.h;
//  - the patch stem on one chunk of 64 tokens, as engine/cpu_model.cc runs it
//    (kStemChunk), one row per layer under the names cpu_model.cc uses;
//  - the encoder at each photo's sequence length L (real tokens of every scale, padding
//    dropped as the engine does, CLS included), plus L = 50, the 224 scale alone
//    (49 + 1), and the rows of the last block, where only the CLS query is computed.
// FLOPs count multiplies and adds separately (a GEMM is 2*m*k*n); non-GEMM ops count
// their arithmetic per element as stated in op_rows.cc. Bytes are the compulsory traffic:
// each input read once, each output written once, not what an implementation moves
// (im2col columns, attention score blocks, the resize's intermediate).
#pragma once
#include <cstdint>
#include <random>
#include <string>
#include <variant>
#include <vector>

#include "cpu/ops.h"
#include "engine/preprocess.h"

namespace musiq::bench {

inline constexpr uint32_t kSeed = 20261125;
inline constexpr int kStemChunk = 64;  // = kStemChunk in engine/cpu_model.cc

// The arguments of one call, per op; buffers are made by each device's bench file.
struct NormalizeCall { int64_t count; };
struct ResizeCall { int in_h, in_w, out_h, out_w; };
struct PatchesCall { int height, width; ScaleGeometry geometry; };
struct ConvCall { int n, in_hw, cin, k, cout, stride, pad, out_hw; };
struct GroupNormCall { int n, hw, c; float eps; bool relu; };
struct MaxPoolCall { int n, in_hw, c, out_hw; };
struct AddReluCall { int64_t count; };
struct LinearCall { int64_t m; int k, n; cpu::Epilogue epilogue; };
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

// Seeded normal values (the work of every op is independent of the values).
inline std::vector<float> random_floats(int64_t n, float stddev = 1.0f, uint32_t seed = kSeed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, stddev);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = dist(rng);
  return v;
}

inline std::vector<uint8_t> random_bytes(int64_t n) {
  std::mt19937 rng(kSeed);
  std::uniform_int_distribution<int> dist(0, 255);
  std::vector<uint8_t> v(static_cast<size_t>(n));
  for (uint8_t& x : v) x = static_cast<uint8_t>(dist(rng));
  return v;
}

// Embedding lookups of `rows` tokens spread over the whole tables, as a photo's are.
struct EmbeddingIndices {
  std::vector<int32_t> spatial, scale_id;
};
EmbeddingIndices embedding_indices(int64_t rows);

}  // namespace musiq::bench
