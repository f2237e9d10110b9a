#include "engine/cpu_model.h"

#include <algorithm>

#include "cpu/ops.h"

namespace musiq {
namespace {

constexpr int64_t kStemChunk = 64;  // tokens through the stem at once: bounded scratch
constexpr int kPatch = 32, kRootOut = 16, kPoolOut = 8;

void grow(std::vector<float>& v, int64_t n) {
  if (static_cast<int64_t>(v.size()) < n) v.resize(n);
}

}  // namespace

CpuModel::CpuModel(ModelWeights weights) : w_(std::move(weights)) {}

void CpuModel::embed_chunk(const Tokens& tokens, int64_t first, int64_t count, float* out) {
  const int n = static_cast<int>(count);
  const int64_t root_px = int64_t{n} * kRootOut * kRootOut;
  const int64_t pool_px = int64_t{n} * kPoolOut * kPoolOut;
  grow(columns_, std::max(root_px * 7 * 7 * 3, pool_px * 3 * 3 * kStemWidth));
  grow(root_, root_px * kStemWidth);
  grow(pooled_, pool_px * kStemWidth);
  grow(proj_, pool_px * kStemOutWidth);
  grow(mid_, pool_px * kStemWidth);
  grow(mid2_, pool_px * kStemWidth);
  grow(unit_, pool_px * kStemOutWidth);
  const float* patches = tokens.patches.data() + first * tokens.patch_values;

  // Root: 7x7/2 SAME conv (pad 2 before, 3 after), GroupNorm + ReLU, 3x3/2 max-pool.
  cpu::conv2d(patches, n, kPatch, kPatch, 3, w_.conv_root.data(), 7, 7, kStemWidth, 2, 2, 2,
              kRootOut, kRootOut, columns_.data(), root_.data());
  cpu::group_norm(root_.data(), n, kRootOut * kRootOut, kStemWidth, kStemGroups,
                  w_.gn_root.scale.data(), w_.gn_root.bias.data(), kRootGroupNormEps, true);
  cpu::max_pool_3x3_s2(root_.data(), n, kRootOut, kRootOut, kStemWidth, kPoolOut, kPoolOut,
                       pooled_.data());

  // block1/unit1: bottleneck with projection.
  const int hw = kPoolOut * kPoolOut;
  cpu::conv2d(pooled_.data(), n, kPoolOut, kPoolOut, kStemWidth, w_.conv_proj.data(), 1, 1,
              kStemOutWidth, 1, 0, 0, kPoolOut, kPoolOut, nullptr, proj_.data());
  cpu::group_norm(proj_.data(), n, hw, kStemOutWidth, kStemGroups, w_.gn_proj.scale.data(),
                  w_.gn_proj.bias.data(), kUnitGroupNormEps, false);
  cpu::conv2d(pooled_.data(), n, kPoolOut, kPoolOut, kStemWidth, w_.conv1.data(), 1, 1,
              kStemWidth, 1, 0, 0, kPoolOut, kPoolOut, nullptr, mid_.data());
  cpu::group_norm(mid_.data(), n, hw, kStemWidth, kStemGroups, w_.gn1.scale.data(),
                  w_.gn1.bias.data(), kUnitGroupNormEps, true);
  cpu::conv2d(mid_.data(), n, kPoolOut, kPoolOut, kStemWidth, w_.conv2.data(), 3, 3, kStemWidth,
              1, 1, 1, kPoolOut, kPoolOut, columns_.data(), mid2_.data());
  cpu::group_norm(mid2_.data(), n, hw, kStemWidth, kStemGroups, w_.gn2.scale.data(),
                  w_.gn2.bias.data(), kUnitGroupNormEps, true);
  cpu::conv2d(mid2_.data(), n, kPoolOut, kPoolOut, kStemWidth, w_.conv3.data(), 1, 1,
              kStemOutWidth, 1, 0, 0, kPoolOut, kPoolOut, nullptr, unit_.data());
  cpu::group_norm(unit_.data(), n, hw, kStemOutWidth, kStemGroups, w_.gn3.scale.data(),
                  w_.gn3.bias.data(), kUnitGroupNormEps, false);
  cpu::add_relu(unit_.data(), proj_.data(), pool_px * kStemOutWidth);

  // Flatten (h, w, c) -> 16384 and project to the hidden size.
  cpu::linear(unit_.data(), n, hw * kStemOutWidth, w_.embedding_kernel.data(),
              w_.config.hidden_size, w_.embedding_bias.data(), cpu::Epilogue::kBias, out);
}

void CpuModel::encoder_block(const EncoderBlockWeights& b, int64_t len, int64_t keep_rows) {
  const ModelConfig& c = w_.config;
  const int h = c.hidden_size;
  cpu::layer_norm(x_.data(), len, h, b.ln0_scale.data(), b.ln0_bias.data(), kLayerNormEps,
                  y_.data());
  cpu::linear(y_.data(), len, h, b.qkv_kernel.data(), 3 * h, b.qkv_bias.data(),
              cpu::Epilogue::kBias, qkv_.data());
  cpu::attention(qkv_.data(), len, c.num_heads, c.head_dim(), keep_rows, ctx_.data());
  cpu::linear(ctx_.data(), keep_rows, h, b.out_kernel.data(), h, b.out_bias.data(),
              cpu::Epilogue::kBiasResidual, x_.data());
  cpu::layer_norm(x_.data(), keep_rows, h, b.ln2_scale.data(), b.ln2_bias.data(),
                  kLayerNormEps, y_.data());
  cpu::linear(y_.data(), keep_rows, h, b.mlp0_kernel.data(), c.mlp_dim, b.mlp0_bias.data(),
              cpu::Epilogue::kBiasGelu, mlp_.data());
  cpu::linear(mlp_.data(), keep_rows, c.mlp_dim, b.mlp1_kernel.data(), h, b.mlp1_bias.data(),
              cpu::Epilogue::kBiasResidual, x_.data());
}

float CpuModel::score(const Tokens& tokens) {
  const ModelConfig& c = w_.config;
  const int h = c.hidden_size;
  const int64_t n = tokens.count(), len = n + 1;
  grow(x_, len * h);
  grow(y_, len * h);
  grow(qkv_, len * 3 * h);
  grow(ctx_, len * h);
  grow(mlp_, len * c.mlp_dim);

  std::copy(w_.cls.begin(), w_.cls.end(), x_.begin());
  for (int64_t first = 0; first < n; first += kStemChunk)
    embed_chunk(tokens, first, std::min(kStemChunk, n - first), x_.data() + (1 + first) * h);
  cpu::add_embeddings(x_.data() + h, n, h, tokens.spatial.data(), tokens.scale_id.data(),
                      w_.pos_embedding.data(), w_.scale_embedding.data());

  // Only the CLS row is read at the end, so the last block updates row 0 alone.
  for (int i = 0; i < c.num_layers; ++i)
    encoder_block(w_.blocks[i], len, i + 1 == c.num_layers ? 1 : len);

  cpu::layer_norm(x_.data(), 1, h, w_.encoder_norm_scale.data(), w_.encoder_norm_bias.data(),
                  kLayerNormEps, y_.data());
  std::vector<float> logits(c.num_classes);
  cpu::linear(y_.data(), 1, h, w_.head_kernel.data(), c.num_classes, w_.head_bias.data(),
              cpu::Epilogue::kBias, logits.data());
  return cpu::head_score(logits.data(), c.num_classes);
}

}  // namespace musiq
