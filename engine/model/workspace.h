// The forward pass's scratch memory for one packed batch, laid out once for both devices:
// the sizes of every buffer, carved from one allocation (std::vector on the CPU, one
// cudaMalloc on the GPU) with each buffer starting on 256 bytes.
#pragma once
#include <cstdint>

#include "weights/config.h"

namespace musiq {

struct Workspace {
  // The sequence [rows, ...]: residual stream, normalized copy, q|k|v, attention output,
  // MLP hidden.
  float *x, *y, *qkv, *ctx, *mlp;
  // The last block and the head, one row per image: the CLS residual stream, the logits
  // [images, classes] and the scores [images].
  float *cls_x, *logits, *scores;
  // The patch stem, one chunk of tokens at a time: the chunk's patches when they come from
  // several images' separate buffers, the scratch of its im2col columns and activations
  // (forward.h's StemScratch; null where each thread holds its own, on the CPU), its
  // output maps, and the chunk's embeddings before they go to their rows of x.
  float *chunk_patches, *stem_scratch, *unit, *embedded;
  // The uploaded model input (GPU only; null on the CPU, which reads the tokens in place):
  // packed patches, embedding indices, and the sequence starts.
  float* patches;
  int32_t *spatial, *scale_id;
  int64_t* starts;
  // The GPU's matrix products under bf16: the input of one, rounded to bfloat16 (bits; null
  // elsewhere).
  uint16_t* bf16_input;
};

struct BatchShape {
  int64_t rows = 0;    // tokens + one CLS per image
  int64_t images = 0;
  int64_t stem_chunk = 0;     // tokens through the stem at once
  bool stem_scratch = false;  // room for the stem's scratch, for the whole chunk (GPU)
  bool with_inputs = false;   // room for the uploaded input (GPU)
  bool bf16_input = false;    // room for a product's input in bfloat16 (GPU under bf16)
};

class WorkspaceLayout {
 public:
  WorkspaceLayout(const ModelConfig& config, const BatchShape& shape);
  int64_t total_floats() const { return total_; }
  Workspace at(float* base) const;

 private:
  enum Slot {
    kX, kY, kQkv, kCtx, kMlp, kClsX, kLogits, kScores, kChunkPatches, kStemScratch, kUnit,
    kEmbedded, kPatches, kSpatial, kScaleId, kStarts, kBf16Input, kSlots
  };
  int64_t offset_[kSlots] = {};
  int64_t total_ = 0;
  bool with_inputs_ = false, stem_scratch_ = false, bf16_input_ = false;
};

}  // namespace musiq
