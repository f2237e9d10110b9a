#include "engine/model/workspace.h"

#include <algorithm>

#include "engine/model/stem_scratch.h"

namespace musiq {
namespace {

constexpr int64_t kAlignFloats = 64;  // 256 bytes
constexpr int kPatch = 32;

}  // namespace

WorkspaceLayout::WorkspaceLayout(const ModelConfig& c, const BatchShape& s)
    : with_inputs_(s.with_inputs), stem_scratch_(s.stem_scratch), bf16_input_(s.bf16_input) {
  const int64_t h = c.hidden_size, rows = s.rows, images = s.images;
  const int64_t tokens = rows - images;
  const int64_t chunk = std::max<int64_t>(1, std::min(s.stem_chunk, tokens));
  const int64_t inputs = s.with_inputs ? 1 : 0;
  int64_t size[kSlots] = {};
  size[kX] = size[kY] = size[kCtx] = rows * h;
  size[kQkv] = rows * 3 * h;
  size[kMlp] = rows * c.mlp_dim;
  size[kClsX] = images * h;
  size[kLogits] = images * c.num_classes;
  size[kScores] = images;
  size[kChunkPatches] = chunk * kPatch * kPatch * 3;
  size[kStemScratch] = s.stem_scratch ? chunk * kStemScratchPerToken : 0;
  size[kUnit] = chunk * kStemUnitPerToken;
  size[kEmbedded] = chunk * h;
  size[kPatches] = inputs * tokens * c.patch_values();
  size[kSpatial] = size[kScaleId] = inputs * tokens;  // int32: one float each
  size[kStarts] = inputs * (images + 1) * 2;          // int64: two floats each
  // The largest product input, in bfloat16 (two to a float): the MLP's hidden layer or the
  // embedding's stem features. The stem's pointwise convolutions read less; the others
  // round into their own columns.
  const int64_t largest_input =
      std::max(rows * std::max(h, int64_t{c.mlp_dim}), chunk * kStemUnitPerToken);
  size[kBf16Input] = s.bf16_input ? (largest_input + 1) / 2 : 0;
  for (int slot = 0; slot < kSlots; ++slot) {
    offset_[slot] = total_;
    total_ += (size[slot] + kAlignFloats - 1) / kAlignFloats * kAlignFloats;
  }
}

Workspace WorkspaceLayout::at(float* base) const {
  auto f = [&](Slot s) { return base + offset_[s]; };
  const bool inputs = with_inputs_;
  Workspace w;
  w.x = f(kX);
  w.y = f(kY);
  w.qkv = f(kQkv);
  w.ctx = f(kCtx);
  w.mlp = f(kMlp);
  w.cls_x = f(kClsX);
  w.logits = f(kLogits);
  w.scores = f(kScores);
  w.chunk_patches = f(kChunkPatches);
  w.stem_scratch = stem_scratch_ ? f(kStemScratch) : nullptr;
  w.unit = f(kUnit);
  w.embedded = f(kEmbedded);
  w.patches = inputs ? f(kPatches) : nullptr;
  w.spatial = inputs ? reinterpret_cast<int32_t*>(f(kSpatial)) : nullptr;
  w.scale_id = inputs ? reinterpret_cast<int32_t*>(f(kScaleId)) : nullptr;
  w.starts = inputs ? reinterpret_cast<int64_t*>(f(kStarts)) : nullptr;
  w.bf16_input = bf16_input_ ? reinterpret_cast<uint16_t*>(f(kBf16Input)) : nullptr;
  return w;
}

}  // namespace musiq
