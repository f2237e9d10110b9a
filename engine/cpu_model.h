// The MUSIQ forward pass on the CPU (spec sections 3 and 4), built from cpu/ops.h.
#pragma once
#include <vector>

#include "engine/model_weights.h"
#include "engine/preprocess.h"

namespace musiq {

class CpuModel {
 public:
  explicit CpuModel(ModelWeights weights);
  const ModelConfig& config() const { return w_.config; }

  // Quality score of one image's tokens. Reuses its workspace between calls.
  float score(const Tokens& tokens);

 private:
  // Patch stem + embedding Dense for tokens [first, first+count) into out [count, hidden].
  void embed_chunk(const Tokens& tokens, int64_t first, int64_t count, float* out);
  // One pre-norm encoder block; only the first `keep_rows` rows are updated.
  void encoder_block(const EncoderBlockWeights& b, int64_t len, int64_t keep_rows);

  ModelWeights w_;
  // Workspace, grown on demand and kept.
  std::vector<float> columns_, root_, pooled_, proj_, mid_, mid2_, unit_;
  std::vector<float> x_, y_, qkv_, ctx_, mlp_;
};

}  // namespace musiq
