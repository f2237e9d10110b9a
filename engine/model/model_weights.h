// Weights rearranged once at load for the forward pass: conv kernels weight-standardized,
// q/k/v fused into one [hidden, 3*hidden] matrix, every parameter in one float block.
// The GPU uploads the block in one copy and calls at() with the device address.
#pragma once
#include <cstdint>
#include <vector>

#include "weights/config.h"
#include "weights/param_table.h"
#include "weights/weights.h"

namespace musiq {

using WeightPointers = ModelParams<const float*>;

struct ModelWeights {
  ModelConfig config;
  std::vector<float> block;      // every parameter, each starting on 256 bytes
  std::vector<int64_t> offsets;  // where each of param_fields(config) starts in `block`, in floats

  // The parameters as pointers into `base`: block.data(), or a copy of the block.
  WeightPointers at(const float* base) const;
  WeightPointers host() const { return at(block.data()); }
};

ModelWeights prepare_model_weights(const WeightsFile& file);

// (w - mean) / (std + 1e-5) per output channel over (H, W, I), population std.
std::vector<float> standardize_conv_kernel(const Tensor& hwio);

}  // namespace musiq
