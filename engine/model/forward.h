// The MUSIQ forward pass (spec sections 3 and 4), written once for every device over a
// packed batch of images (engine/model/packed_batch.h). The device is a ForwardOps type:
// CpuOps (engine/model/cpu_model.cc) or CudaOps (engine/model/gpu_model.cc).
#pragma once
#include <algorithm>
#include <concepts>
#include <cstdint>

#include "base/op_arguments.h"  // Epilogue, Queries
#include "base/precision.h"
#include "engine/model/model_weights.h"
#include "engine/model/packed_batch.h"
#include "engine/model/stem_scratch.h"
#include "engine/model/workspace.h"
#include "weights/config.h"

namespace musiq {

// What a device provides to the forward pass: the model's ops of cpu/ops.h under the same
// names and arguments (the GPU's also carry their stream and cuBLAS handle), and the steps
// each device takes its own way. `ops.precision` is the pass's arithmetic
// (docs/precision.md); the pass gives it to each product op, the head's Dense excepted.
template <typename Ops>
concept ForwardOps = requires(Ops& ops, float* out, const float* in, const float* weights,
                              int64_t rows, int size, float eps, bool relu,
                              const Conv2dShape& conv, Epilogue epilogue,
                              const int32_t* index, Queries queries, Precision precision,
                              const PackedBatch& batch, const Workspace& ws,
                              void (*tile)(int64_t first, int64_t n, const StemScratch&)) {
  // Tokens through the stem at once: a constant, as the stem sizes an array by it.
  requires std::same_as<decltype(Ops::kStemChunk), const int64_t>;
  { ops.precision } -> std::convertible_to<Precision>;
  ops.copy(out, in, rows);  // floats, on the device
  ops.conv2d(in, conv, weights, out, out, precision);
  ops.group_norm(out, size, size, size, size, weights, weights, eps, relu);
  ops.max_pool_3x3_s2(in, size, size, size, size, size, size, out);
  ops.add_relu(out, in, rows);
  ops.linear(in, rows, size, weights, size, weights, epilogue, out, precision);
  ops.layer_norm(in, rows, size, weights, weights, eps, out);
  ops.add_embeddings(out, rows, size, index, index, weights, weights);
  ops.attention(in, batch, size, size, queries, out, precision);  // each image's rows apart
  ops.head_scores(in, size, size, out);                // logits, images, classes, scores
  ops.range("stage");  // a scope marking a stage (NVTX on the GPU)
  // tile(first, n, scratch) over tiles of `rows` tokens, each with a StemScratch for n.
  ops.stem_tiles(ws, rows, tile);
};

namespace forward_detail {

// The patch stem (root and block1/unit1) for `count` tokens' patches into unit
// [count, 8*8*256], with `scratch` holding as many tokens. Each token's maps are its own
// (GroupNorm is per token), so tiles of tokens may run at once.
template <ForwardOps Ops>
void stem_tile(Ops& ops, const WeightPointers& w, const StemScratch& s, const float* patches,
               int64_t count, float* unit) {
  const int n = static_cast<int>(count);
  constexpr int kRoot = kStemRootOut, kPool = kStemPoolOut, hw = kPool * kPool;
  // Root: 7x7/2 SAME conv (pad 2 before, 3 after), GroupNorm + ReLU, 3x3/2 max-pool.
  const Conv2dShape root{.batch = n, .height = kStemPatch, .width = kStemPatch,
                         .in_channels = 3, .kernel = 7, .stride = 2, .pad_top = 2,
                         .pad_left = 2, .out_channels = kStemWidth, .out_height = kRoot,
                         .out_width = kRoot};
  const Precision p = ops.precision;
  ops.conv2d(patches, root, w.conv_root, s.columns, s.root, p);
  ops.group_norm(s.root, n, kRoot * kRoot, kStemWidth, kStemGroups, w.gn_root.scale,
                 w.gn_root.bias, kRootGroupNormEps, true);
  ops.max_pool_3x3_s2(s.root, n, kRoot, kRoot, kStemWidth, kPool, kPool, s.pooled);

  // block1/unit1: bottleneck with projection, on the pooled maps: 1x1 convolutions to the
  // stem's width (conv1) or the unit's (projection, conv3), and conv2's 3x3 SAME one.
  const Conv2dShape narrow{.batch = n, .height = kPool, .width = kPool,
                           .in_channels = kStemWidth, .out_channels = kStemWidth,
                           .out_height = kPool, .out_width = kPool};
  Conv2dShape wide = narrow, conv2 = narrow;
  wide.out_channels = kStemOutWidth;
  conv2.kernel = 3;
  conv2.pad_top = conv2.pad_left = 1;
  ops.conv2d(s.pooled, wide, w.conv_proj, nullptr, s.proj, p);
  ops.group_norm(s.proj, n, hw, kStemOutWidth, kStemGroups, w.gn_proj.scale, w.gn_proj.bias,
                 kUnitGroupNormEps, false);
  ops.conv2d(s.pooled, narrow, w.conv1, nullptr, s.mid, p);
  ops.group_norm(s.mid, n, hw, kStemWidth, kStemGroups, w.gn1.scale, w.gn1.bias,
                 kUnitGroupNormEps, true);
  ops.conv2d(s.mid, conv2, w.conv2, s.columns, s.mid2, p);
  ops.group_norm(s.mid2, n, hw, kStemWidth, kStemGroups, w.gn2.scale, w.gn2.bias,
                 kUnitGroupNormEps, true);
  ops.conv2d(s.mid2, wide, w.conv3, nullptr, unit, p);
  ops.group_norm(unit, n, hw, kStemOutWidth, kStemGroups, w.gn3.scale, w.gn3.bias,
                 kUnitGroupNormEps, false);
  ops.add_relu(unit, s.proj, int64_t{n} * kStemUnitPerToken);
}

// Patch stem + embedding Dense for `count` patches into ws.embedded [count, hidden]: the
// stem in tiles of tokens as the device runs them (Ops::stem_tiles), then one GEMM.
template <ForwardOps Ops>
void embed(Ops& ops, const ModelConfig& c, const WeightPointers& w, const Workspace& ws,
           const float* patches, int64_t count) {
  const int64_t pv = c.patch_values();
  ops.stem_tiles(ws, count, [&](int64_t first, int64_t n, const StemScratch& scratch) {
    stem_tile(ops, w, scratch, patches + first * pv, n, ws.unit + first * kStemUnitPerToken);
  });
  // Flatten (h, w, c) -> 16384 and project to the hidden size.
  ops.linear(ws.unit, count, static_cast<int>(kStemUnitPerToken), w.embedding_kernel,
             c.hidden_size, w.embedding_bias, Epilogue::kBias, ws.embedded, ops.precision);
}

// The stem over every image's tokens, in chunks of Ops::kStemChunk that may span images
// (so small images share their GEMMs), each chunk's embeddings copied to their rows of x.
template <ForwardOps Ops>
void stem(Ops& ops, const ModelConfig& c, const WeightPointers& w, const Workspace& ws,
          const PackedBatch& batch) {
  const int h = c.hidden_size;
  const int64_t pv = c.patch_values();
  const int64_t total = batch.tokens();
  for (int64_t first = 0; first < total; first += Ops::kStemChunk) {
    const int64_t count = std::min(Ops::kStemChunk, total - first);
    // The images this chunk covers: [b0, b1), with their first token in the chunk.
    struct Piece {
      int image;
      int64_t from, count;  // tokens of that image
    };
    Piece pieces[Ops::kStemChunk] = {};  // each image has a token at least
    int n_pieces = 0;
    int64_t seen = 0;
    for (int b = 0; b < batch.batch() && seen < first + count; ++b) {
      const int64_t n = batch.images[b].tokens;
      const int64_t lo = std::max(first, seen), hi = std::min(first + count, seen + n);
      if (lo < hi) pieces[n_pieces++] = {b, lo - seen, hi - lo};
      seen += n;
    }
    // The chunk's patches: in place when the pieces lie end to end in memory (one image,
    // or the GPU's packed upload), else gathered.
    const float* patches = batch.images[pieces[0].image].patches + pieces[0].from * pv;
    bool contiguous = true;
    for (int p = 1; p < n_pieces; ++p)
      contiguous = contiguous && batch.images[pieces[p].image].patches ==
                                     batch.images[pieces[p - 1].image].patches +
                                         (pieces[p - 1].from + pieces[p - 1].count) * pv;
    if (!contiguous) {
      int64_t at = 0;
      for (int p = 0; p < n_pieces; ++p) {
        ops.copy(ws.chunk_patches + at * pv,
                 batch.images[pieces[p].image].patches + pieces[p].from * pv,
                 pieces[p].count * pv);
        at += pieces[p].count;
      }
      patches = ws.chunk_patches;
    }
    embed(ops, c, w, ws, patches, count);
    int64_t at = 0;
    for (int p = 0; p < n_pieces; ++p) {
      const int64_t row = batch.starts[pieces[p].image] + 1 + pieces[p].from;
      ops.copy(ws.x + row * h, ws.embedded + at * h, pieces[p].count * h);
      at += pieces[p].count;
    }
  }
}

// One pre-norm encoder block over every row; the last block (`cls_only`) computes only
// the CLS query of each image, and its rows go on in ws.cls_x [images, hidden].
template <ForwardOps Ops>
void encoder_block(Ops& ops, const ModelConfig& c, const EncoderBlockParams<const float*>& b,
                   const Workspace& ws, const PackedBatch& batch, bool cls_only) {
  const int h = c.hidden_size;
  const int64_t rows = batch.rows();
  const Precision p = ops.precision;
  ops.layer_norm(ws.x, rows, h, b.ln0_scale, b.ln0_bias, kLayerNormEps, ws.y);
  ops.linear(ws.y, rows, h, b.qkv_kernel, 3 * h, b.qkv_bias, Epilogue::kBias, ws.qkv, p);
  ops.attention(ws.qkv, batch, c.num_heads, c.head_dim(),
                cls_only ? Queries::kFirst : Queries::kAll, ws.ctx, p);
  float* stream = ws.x;
  int64_t m = rows;
  if (cls_only) {
    for (int i = 0; i < batch.batch(); ++i)
      ops.copy(ws.cls_x + int64_t{i} * h, ws.x + batch.starts[i] * h, h);
    stream = ws.cls_x;
    m = batch.batch();
  }
  ops.linear(ws.ctx, m, h, b.out_kernel, h, b.out_bias, Epilogue::kBiasResidual, stream, p);
  ops.layer_norm(stream, m, h, b.ln2_scale, b.ln2_bias, kLayerNormEps, ws.y);
  ops.linear(ws.y, m, h, b.mlp0_kernel, c.mlp_dim, b.mlp0_bias, Epilogue::kBiasGelu,
             ws.mlp, p);
  ops.linear(ws.mlp, m, c.mlp_dim, b.mlp1_kernel, h, b.mlp1_bias, Epilogue::kBiasResidual,
             stream, p);
}

}  // namespace forward_detail

// Scores of every image of `batch` into ws.scores [images], on the device of `ops`; the
// batch's inputs and batch.device_starts are on that device already.
template <ForwardOps Ops>
void forward(Ops& ops, const ModelConfig& c, const WeightPointers& w, const Workspace& ws,
             const PackedBatch& batch) {
  namespace fd = forward_detail;
  const int h = c.hidden_size;
  const int images = batch.batch();
  {
    [[maybe_unused]] auto range = ops.range("stem");
    for (int i = 0; i < images; ++i) ops.copy(ws.x + batch.starts[i] * h, w.cls, h);
    fd::stem(ops, c, w, ws, batch);
  }
  {
    [[maybe_unused]] auto range = ops.range("embeddings");
    for (int i = 0; i < images; ++i) {
      const ImageInput& in = batch.images[i];
      ops.add_embeddings(ws.x + (batch.starts[i] + 1) * h, in.tokens, h, in.spatial,
                         in.scale_id, w.pos_embedding, w.scale_embedding);
    }
  }
  // Only the CLS rows are read at the end, so the last block computes those alone.
  for (int i = 0; i < c.num_layers; ++i) {
    [[maybe_unused]] auto range = ops.range("encoder_block");
    fd::encoder_block(ops, c, w.blocks[i], ws, batch, i + 1 == c.num_layers);
  }
  [[maybe_unused]] auto range = ops.range("head");
  ops.layer_norm(ws.cls_x, images, h, w.encoder_norm_scale, w.encoder_norm_bias, kLayerNormEps,
                 ws.y);
  // The head stays in float32 at every precision.
  ops.linear(ws.y, images, h, w.head_kernel, c.num_classes, w.head_bias, Epilogue::kBias,
             ws.logits, Precision::kFp32);
  ops.head_scores(ws.logits, images, c.num_classes, ws.scores);
}

}  // namespace musiq
