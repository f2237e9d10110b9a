// Weights rearranged once at load for the forward pass: conv kernels weight-standardized,
// q/k/v fused into one [hidden, 3*hidden] matrix, every parameter in one float block.
// ModelParams names each parameter once; with P = int64_t it holds offsets into the block,
// with P = const float* pointers into the block or into its device copy (the GPU uploads
// the block in one copy and calls at() with the device address).
#pragma once
#include <cstdint>
#include <vector>

#include "weights/config.h"
#include "weights/weights.h"

namespace musiq {

template <typename P>
struct GroupNormParams {
  P scale, bias;  // [C]
};

template <typename P>
struct EncoderBlockParams {
  P ln0_scale, ln0_bias;    // [hidden]
  P qkv_kernel, qkv_bias;   // [hidden, 3*hidden], [3*hidden]
  P out_kernel, out_bias;   // [hidden, hidden], [hidden]
  P ln2_scale, ln2_bias;    // [hidden]
  P mlp0_kernel, mlp0_bias; // [hidden, mlp], [mlp]
  P mlp1_kernel, mlp1_bias; // [mlp, hidden], [hidden]
};

template <typename P>
struct ModelParams {
  // Stem, HWIO kernels standardized.
  P conv_root;                          // [7,7,3,64]
  GroupNormParams<P> gn_root;
  P conv_proj, conv1, conv2, conv3;     // [1,1,64,256] [1,1,64,64] [3,3,64,64] [1,1,64,256]
  GroupNormParams<P> gn_proj, gn1, gn2, gn3;
  P embedding_kernel, embedding_bias;   // [16384, hidden], [hidden]
  P pos_embedding;                      // [G*G, hidden]
  P scale_embedding;                    // [num_scales, hidden]
  P cls;                                // [hidden]
  std::vector<EncoderBlockParams<P>> blocks;
  P encoder_norm_scale, encoder_norm_bias;
  P head_kernel, head_bias;             // [hidden, C], [C]
};

using WeightPointers = ModelParams<const float*>;

struct ModelWeights {
  ModelConfig config;
  std::vector<float> block;         // every parameter, each starting on 256 bytes
  ModelParams<int64_t> offsets;     // where each one starts in `block`, in floats

  // The parameters as pointers into `base`: block.data(), or a copy of the block.
  WeightPointers at(const float* base) const;
  WeightPointers host() const { return at(block.data()); }
};

ModelWeights prepare_model_weights(const WeightsFile& file);

// (w - mean) / (std + 1e-5) per output channel over (H, W, I), population std.
std::vector<float> standardize_conv_kernel(const Tensor& hwio);

}  // namespace musiq
