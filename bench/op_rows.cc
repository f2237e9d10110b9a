#include "bench/op_rows.h"

#include "base/resize_plan.h"
#include "bench/photos.h"
#include "weights/config.h"

namespace musiq::bench {
namespace {

constexpr int kPatch = 32, kRootOut = 16, kPoolOut = 8;

// Sequence length the engine runs for a photo: real tokens of every scale, plus CLS.
int64_t sequence_length(int height, int width, const ModelConfig& c) {
  int64_t n = 0;
  for (int side : c.longer_side_lengths) {
    const auto [rh, rw] = resized_shape(height, width, side);
    const int64_t per_side = (side + c.patch_size - 1) / c.patch_size;
    n += scale_geometry(rh, rw, c.patch_size, per_side * per_side).tokens;
  }
  n += scale_geometry(height, width, c.patch_size, c.max_seq_len_from_original_res).tokens;
  return n + 1;
}

void add_preprocess_rows(const Photo& p, std::vector<OpRow>& rows) {
  const int h = p.height, w = p.width;
  const std::string tag = p.name;
  const int64_t count = int64_t{h} * w * 3;
  // x / 255 * 2 - 1: 3 FLOP; 1 byte in, 4 out.
  rows.push_back({"normalize_image/" + tag, 3.0 * count, 5.0 * count, NormalizeCall{count}});

  const ModelConfig config;
  for (int side : config.longer_side_lengths) {
    const auto [rh, rw] = resized_shape(h, w, side);
    const int rows_span = gaussian_resize_plan(h, rh).span;
    const int cols_span = gaussian_resize_plan(w, rw).span;
    // A multiply and an add per tap: rows pass over [rh, w, 3], columns over [rh, rw, 3].
    const double flops = 2.0 * rows_span * rh * w * 3 + 2.0 * cols_span * rh * rw * 3;
    const double bytes = 4.0 * (count + int64_t{rh} * rw * 3);
    rows.push_back({"gaussian_resize/" + tag + "->" + std::to_string(rw) + "x" +
                        std::to_string(rh),
                    flops, bytes, ResizeCall{h, w, rh, rw}});
  }

  // Patches of each scale's image (resized scales, then native): a copy, no FLOPs.
  std::vector<std::pair<std::string, std::pair<int, int>>> scales;
  for (int side : config.longer_side_lengths)
    scales.push_back({"scale" + std::to_string(side), resized_shape(h, w, side)});
  scales.push_back({"native", {h, w}});
  for (const auto& [scale, size] : scales) {
    const int sh = size.first, sw = size.second;
    const ScaleGeometry g = scale_geometry(sh, sw, kPatch, -1);
    const int64_t out_count = int64_t{g.count_h} * g.count_w * kPatch * kPatch * 3;
    rows.push_back({"extract_patches/" + tag + "/" + scale, 0,
                    4.0 * (int64_t{sh} * sw * 3 + out_count), PatchesCall{sh, sw, g}});
  }
}

void add_linear_row(const std::string& name, int64_t m, int k, int n, Epilogue epilogue,
                    std::vector<OpRow>& rows) {
  const bool residual = epilogue == Epilogue::kBiasResidual;
  const double flops = 2.0 * m * k * n + double(m) * n;  // GEMM + bias
  const double bytes = 4.0 * (m * k + int64_t{k} * n + n + m * n * (residual ? 2 : 1));
  rows.push_back({name, flops, bytes, LinearCall{m, k, n, epilogue}});
}

void add_stem_rows(std::vector<OpRow>& rows) {
  const int n = kStemChunk;
  auto conv = [&](const std::string& layer, int in_hw, int cin, int k, int cout, int stride,
                  int pad, int out_hw) {
    const int64_t in_count = int64_t{n} * in_hw * in_hw * cin;
    const int64_t out_count = int64_t{n} * out_hw * out_hw * cout;
    const int64_t kernel_count = int64_t{k} * k * cin * cout;
    rows.push_back({"stem/" + layer + "/chunk64", 2.0 * out_count * k * k * cin,
                    4.0 * (in_count + kernel_count + out_count),
                    ConvCall{n, in_hw, cin, k, cout, stride, pad, out_hw}});
  };
  auto group_norm = [&](const std::string& layer, int hw, int c, float eps, bool relu) {
    const int64_t count = int64_t{n} * hw * c;
    // Statistics: add, multiply, add; normalize: subtract, multiply, multiply, add.
    rows.push_back({"stem/" + layer + "/chunk64", 7.0 * count, 8.0 * count,
                    GroupNormCall{n, hw, c, eps, relu}});
  };
  conv("conv_root_7x7s2", kPatch, 3, 7, kStemWidth, 2, 2, kRootOut);
  group_norm("gn_root_relu", kRootOut * kRootOut, kStemWidth, kRootGroupNormEps, true);
  {
    const int64_t in_count = int64_t{n} * kRootOut * kRootOut * kStemWidth;
    const int64_t out_count = int64_t{n} * kPoolOut * kPoolOut * kStemWidth;
    // 9 comparisons per output.
    rows.push_back({"stem/max_pool_3x3s2/chunk64", 9.0 * out_count,
                    4.0 * (in_count + out_count), MaxPoolCall{n, kRootOut, kStemWidth, kPoolOut}});
  }
  const int hw = kPoolOut * kPoolOut;
  conv("conv_proj_1x1", kPoolOut, kStemWidth, 1, kStemOutWidth, 1, 0, kPoolOut);
  group_norm("gn_proj", hw, kStemOutWidth, kUnitGroupNormEps, false);
  conv("conv1_1x1", kPoolOut, kStemWidth, 1, kStemWidth, 1, 0, kPoolOut);
  group_norm("gn1_relu", hw, kStemWidth, kUnitGroupNormEps, true);
  conv("conv2_3x3", kPoolOut, kStemWidth, 3, kStemWidth, 1, 1, kPoolOut);
  group_norm("gn2_relu", hw, kStemWidth, kUnitGroupNormEps, true);
  conv("conv3_1x1", kPoolOut, kStemWidth, 1, kStemOutWidth, 1, 0, kPoolOut);
  group_norm("gn3", hw, kStemOutWidth, kUnitGroupNormEps, false);
  {
    const int64_t count = int64_t{n} * hw * kStemOutWidth;
    // Add and max: 2 FLOP; read two, write one.
    rows.push_back({"stem/add_relu/chunk64", 2.0 * count, 12.0 * count, AddReluCall{count}});
  }
  add_linear_row("stem/embedding/chunk64", n, hw * kStemOutWidth, ModelConfig().hidden_size,
                 Epilogue::kBias, rows);
}

void add_attention_row(const std::string& name, int64_t len, int64_t q_rows,
                       std::vector<OpRow>& rows) {
  const int hidden = ModelConfig().hidden_size;
  // QK^T and PV GEMMs; softmax not counted. Reads q rows, all of K and V; writes out.
  rows.push_back({name, 4.0 * q_rows * len * hidden,
                  4.0 * (2 * q_rows * hidden + 2 * len * hidden), AttentionCall{len, q_rows}});
}

void add_encoder_rows(const std::string& tag, int64_t len, std::vector<OpRow>& rows) {
  const ModelConfig c;
  const int h = c.hidden_size;
  const std::string suffix = "/" + tag + "/L" + std::to_string(len);
  // Mean and variance: add, multiply, add; normalize: subtract, multiply, multiply, add.
  rows.push_back({"encoder/layer_norm" + suffix, 7.0 * len * h, 8.0 * len * h,
                  LayerNormCall{len, h}});
  const int64_t tokens = len - 1;  // every token but CLS
  rows.push_back({"encoder/add_embeddings" + suffix, 2.0 * tokens * h,
                  4.0 * (2 * tokens * h + 2 * tokens), EmbeddingsCall{tokens, h}});
  add_linear_row("encoder/qkv" + suffix, len, h, 3 * h, Epilogue::kBias, rows);
  add_attention_row("encoder/attention" + suffix, len, len, rows);
  add_linear_row("encoder/out_proj" + suffix, len, h, h, Epilogue::kBiasResidual, rows);
  add_linear_row("encoder/mlp0_gelu" + suffix, len, h, c.mlp_dim, Epilogue::kBiasGelu, rows);
  add_linear_row("encoder/mlp1" + suffix, len, c.mlp_dim, h, Epilogue::kBiasResidual, rows);
  // The last block computes the CLS query only, against all keys.
  add_attention_row("encoder/attention_cls_only" + suffix, len, 1, rows);
}

void add_cls_rows(std::vector<OpRow>& rows) {
  const ModelConfig c;
  const int h = c.hidden_size;
  add_linear_row("encoder/out_proj/cls_row", 1, h, h, Epilogue::kBiasResidual, rows);
  add_linear_row("encoder/mlp0_gelu/cls_row", 1, h, c.mlp_dim, Epilogue::kBiasGelu, rows);
  add_linear_row("encoder/mlp1/cls_row", 1, c.mlp_dim, h, Epilogue::kBiasResidual, rows);
  for (int classes : {1, 10}) {
    const std::string tag = "/classes" + std::to_string(classes);
    add_linear_row("head/linear" + tag, 1, h, classes, Epilogue::kBias, rows);
    // Softmax and weighted mean: about 5 FLOP per class (exp counted as one).
    rows.push_back({"head/head_score" + tag, 5.0 * classes, 4.0 * classes,
                    HeadScoreCall{classes}});
  }
}

}  // namespace

std::vector<OpRow> musiq_op_rows() {
  std::vector<OpRow> rows;
  for (const Photo& p : kPhotos) add_preprocess_rows(p, rows);
  add_stem_rows(rows);
  const ModelConfig config;
  add_encoder_rows("scale224", 49 + 1, rows);
  for (const Photo& p : kPhotos)
    add_encoder_rows(p.name, sequence_length(p.height, p.width, config), rows);
  add_cls_rows(rows);
  return rows;
}

EmbeddingIndices embedding_indices(int64_t rows) {
  const ModelConfig c;
  EmbeddingIndices idx;
  idx.spatial.resize(static_cast<size_t>(rows));
  idx.scale_id.resize(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) {
    idx.spatial[r] = static_cast<int32_t>(r % (c.hse_grid_size * c.hse_grid_size));
    idx.scale_id[r] = static_cast<int32_t>(r % c.num_scales());
  }
  return idx;
}

}  // namespace musiq::bench
