// The MUSIQ forward pass on the CPU: engine/model/forward.h over the ops of cpu/ops.h.
#pragma once
#include <span>
#include <vector>

#include "engine/model/model_weights.h"
#include "engine/model/thread_budget.h"
#include "engine/preprocess/preprocess.h"

namespace musiq {

class CpuModel {
 public:
  explicit CpuModel(ModelWeights weights);
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
  std::vector<float> workspace_;
  ThreadBudget threads_;
};

}  // namespace musiq
