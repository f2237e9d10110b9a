// Weights rearranged once at load for the forward pass: conv kernels weight-standardized,
// q/k/v fused into one [hidden, 3*hidden] matrix. Shared by the CPU and GPU paths.
#pragma once
#include <vector>

#include "engine/config.h"
#include "engine/weights.h"

namespace musiq {

struct GroupNormWeights {
  std::vector<float> scale, bias;  // [C]
};

struct EncoderBlockWeights {
  std::vector<float> ln0_scale, ln0_bias;    // [hidden]
  std::vector<float> qkv_kernel, qkv_bias;   // [hidden, 3*hidden], [3*hidden]
  std::vector<float> out_kernel, out_bias;   // [hidden, hidden], [hidden]
  std::vector<float> ln2_scale, ln2_bias;    // [hidden]
  std::vector<float> mlp0_kernel, mlp0_bias; // [hidden, mlp], [mlp]
  std::vector<float> mlp1_kernel, mlp1_bias; // [mlp, hidden], [hidden]
};

struct ModelWeights {
  ModelConfig config;
  // Stem, HWIO kernels standardized.
  std::vector<float> conv_root;              // [7,7,3,64]
  GroupNormWeights gn_root;
  std::vector<float> conv_proj, conv1, conv2, conv3;  // [1,1,64,256] [1,1,64,64] [3,3,64,64] [1,1,64,256]
  GroupNormWeights gn_proj, gn1, gn2, gn3;
  std::vector<float> embedding_kernel, embedding_bias;  // [16384, hidden], [hidden]
  std::vector<float> pos_embedding;          // [G*G, hidden]
  std::vector<float> scale_embedding;        // [num_scales, hidden]
  std::vector<float> cls;                    // [hidden]
  std::vector<EncoderBlockWeights> blocks;
  std::vector<float> encoder_norm_scale, encoder_norm_bias;
  std::vector<float> head_kernel, head_bias; // [hidden, C], [C]
};

ModelWeights prepare_model_weights(const WeightsFile& file);

// (w - mean) / (std + 1e-5) per output channel over (H, W, I), population std.
std::vector<float> standardize_conv_kernel(const Tensor& hwio);

}  // namespace musiq
