// The MUSIQ forward pass on the CPU: engine/model/forward.h over the ops of cpu/ops.h.
#pragma once
#include <cstdint>
#include <span>
#include <unordered_map>
#include <vector>

#include "base/precision.h"
#include "engine/model/model_weights.h"
#include "engine/model/thread_budget.h"
#include "engine/preprocess/preprocess.h"

namespace musiq {

// Kernels in bf16 tiles (cpu/bf16_gemm.h), by the packed float32 kernel each was made from.
using Bf16Kernels = std::unordered_map<const float*, std::vector<uint16_t>>;

class CpuModel {
 public:
  // fp32, bf16 or tf32 (docs/precision.md); tf32 only as the GPU's twin: the scorer offers
  // the CPU fp32 and bf16 (precisions_on).
  CpuModel(ModelWeights weights, Precision precision = Precision::kFp32);
  const ModelConfig& config() const { return w_.config; }

  // Quality score of one image's tokens.
  float score(const Tokens& tokens);
  // Scores of several images' tokens in one packed pass, in order. Equal to their single
  // scores within float rounding (tests/batch_test.cc). Reuses its workspace between
  // calls, grown to the largest batch seen.
  std::vector<float> score_batch(std::span<const Tokens* const> images);

 private:
  ModelWeights w_;         // Dense and convolution kernels packed (cpu/gemm.h)
  WeightPointers params_;  // into w_.block, or packed_beside_
  std::vector<std::vector<float>> packed_beside_;
  Bf16Kernels bf16_kernels_;  // under bf16 on a bf16 kernel
  Precision precision_;
  std::vector<float> workspace_;
  ThreadBudget threads_;
};

}  // namespace musiq
