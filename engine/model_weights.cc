#include "engine/model_weights.h"

#include <algorithm>
#include <cmath>

#include "engine/param_table.h"

namespace musiq {

std::vector<float> standardize_conv_kernel(const Tensor& hwio) {
  const int64_t cout = hwio.shape.back();
  const int64_t fan_in = hwio.numel() / cout;
  std::vector<float> w(hwio.data);
  for (int64_t o = 0; o < cout; ++o) {
    double sum = 0.0;
    for (int64_t i = 0; i < fan_in; ++i) sum += w[i * cout + o];
    const double mean = sum / fan_in;
    double sq = 0.0;
    for (int64_t i = 0; i < fan_in; ++i) sq += (w[i * cout + o] - mean) * (w[i * cout + o] - mean);
    const double denom = std::sqrt(sq / fan_in) + 1e-5;
    for (int64_t i = 0; i < fan_in; ++i)
      w[i * cout + o] = static_cast<float>((w[i * cout + o] - mean) / denom);
  }
  return w;
}

namespace {

std::vector<float> param(const WeightsFile& f, const std::string& name) { return f.at(name).data; }

GroupNormWeights group_norm(const WeightsFile& f, const std::string& prefix) {
  return {param(f, prefix + "/scale"), param(f, prefix + "/bias")};
}

EncoderBlockWeights encoder_block(const WeightsFile& f, int index, int hidden) {
  const std::string b = encoder_block_prefix(index);
  const std::string att = b + "MultiHeadDotProductAttention_1/";
  EncoderBlockWeights w;
  w.ln0_scale = param(f, b + "LayerNorm_0/scale");
  w.ln0_bias = param(f, b + "LayerNorm_0/bias");
  // [hidden, heads, head_dim] is [hidden, hidden] row-major; fuse rows as [q | k | v].
  w.qkv_kernel.resize(size_t(hidden) * 3 * hidden);
  w.qkv_bias.resize(size_t(3) * hidden);
  const char* names[3] = {"query", "key", "value"};
  for (int p = 0; p < 3; ++p) {
    const Tensor& k = f.at(att + names[p] + "/kernel");
    const Tensor& bias = f.at(att + names[p] + "/bias");
    for (int r = 0; r < hidden; ++r)
      std::copy_n(k.data.data() + size_t(r) * hidden, hidden,
                  w.qkv_kernel.data() + size_t(r) * 3 * hidden + size_t(p) * hidden);
    std::copy_n(bias.data.data(), hidden, w.qkv_bias.data() + size_t(p) * hidden);
  }
  w.out_kernel = param(f, att + "out/kernel");  // [heads, head_dim, hidden] = [hidden, hidden]
  w.out_bias = param(f, att + "out/bias");
  w.ln2_scale = param(f, b + "LayerNorm_2/scale");
  w.ln2_bias = param(f, b + "LayerNorm_2/bias");
  w.mlp0_kernel = param(f, b + "MlpBlock_3/Dense_0/kernel");
  w.mlp0_bias = param(f, b + "MlpBlock_3/Dense_0/bias");
  w.mlp1_kernel = param(f, b + "MlpBlock_3/Dense_1/kernel");
  w.mlp1_bias = param(f, b + "MlpBlock_3/Dense_1/bias");
  return w;
}

}  // namespace

ModelWeights prepare_model_weights(const WeightsFile& f) {
  ModelWeights w;
  w.config = f.config;
  w.conv_root = standardize_conv_kernel(f.at("conv_root/kernel"));
  w.gn_root = group_norm(f, "gn_root");
  const std::string unit = "block1/unit1/";
  w.conv_proj = standardize_conv_kernel(f.at(unit + "conv_proj/kernel"));
  w.conv1 = standardize_conv_kernel(f.at(unit + "conv1/kernel"));
  w.conv2 = standardize_conv_kernel(f.at(unit + "conv2/kernel"));
  w.conv3 = standardize_conv_kernel(f.at(unit + "conv3/kernel"));
  w.gn_proj = group_norm(f, unit + "gn_proj");
  w.gn1 = group_norm(f, unit + "gn1");
  w.gn2 = group_norm(f, unit + "gn2");
  w.gn3 = group_norm(f, unit + "gn3");
  w.embedding_kernel = param(f, "embedding/kernel");
  w.embedding_bias = param(f, "embedding/bias");
  w.pos_embedding = param(f, "Transformer/posembed_input/pos_embedding");
  w.scale_embedding = param(f, "Transformer/scaleembed_input/scale_embedding");
  w.cls = param(f, "Transformer/cls");
  for (int i = 0; i < f.config.num_layers; ++i)
    w.blocks.push_back(encoder_block(f, i, f.config.hidden_size));
  w.encoder_norm_scale = param(f, "Transformer/encoder_norm/scale");
  w.encoder_norm_bias = param(f, "Transformer/encoder_norm/bias");
  w.head_kernel = param(f, "head/kernel");
  w.head_bias = param(f, "head/bias");
  return w;
}

}  // namespace musiq
