#include "engine/model/model_weights.h"

#include <algorithm>
#include <cmath>

#include "weights/param_table.h"

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

constexpr int64_t kAlignFloats = 64;  // 256 bytes: what cuBLAS and vector loads like best

// Appends parameters to one block, each aligned; returns where each went.
class BlockBuilder {
 public:
  explicit BlockBuilder(const WeightsFile& f) : f_(f) {}
  int64_t put(const std::vector<float>& values) {
    const int64_t at = static_cast<int64_t>(block_.size());
    block_.insert(block_.end(), values.begin(), values.end());
    block_.resize((block_.size() + kAlignFloats - 1) / kAlignFloats * kAlignFloats, 0.0f);
    return at;
  }
  int64_t param(const std::string& name) { return put(f_.at(name).data); }
  int64_t conv(const std::string& name) { return put(standardize_conv_kernel(f_.at(name))); }
  GroupNormParams<int64_t> group_norm(const std::string& prefix) {
    return {param(prefix + "/scale"), param(prefix + "/bias")};
  }
  std::vector<float> take() { return std::move(block_); }

 private:
  const WeightsFile& f_;
  std::vector<float> block_;
};

EncoderBlockParams<int64_t> encoder_block(const WeightsFile& f, BlockBuilder& out, int index,
                                          int hidden) {
  const std::string b = encoder_block_prefix(index);
  const std::string att = b + "MultiHeadDotProductAttention_1/";
  EncoderBlockParams<int64_t> w;
  w.ln0_scale = out.param(b + "LayerNorm_0/scale");
  w.ln0_bias = out.param(b + "LayerNorm_0/bias");
  // [hidden, heads, head_dim] is [hidden, hidden] row-major; fuse rows as [q | k | v].
  std::vector<float> qkv_kernel(size_t(hidden) * 3 * hidden), qkv_bias(size_t(3) * hidden);
  const char* names[3] = {"query", "key", "value"};
  for (int p = 0; p < 3; ++p) {
    const Tensor& k = f.at(att + names[p] + "/kernel");
    const Tensor& bias = f.at(att + names[p] + "/bias");
    for (int r = 0; r < hidden; ++r)
      std::copy_n(k.data.data() + size_t(r) * hidden, hidden,
                  qkv_kernel.data() + size_t(r) * 3 * hidden + size_t(p) * hidden);
    std::copy_n(bias.data.data(), hidden, qkv_bias.data() + size_t(p) * hidden);
  }
  w.qkv_kernel = out.put(qkv_kernel);
  w.qkv_bias = out.put(qkv_bias);
  w.out_kernel = out.param(att + "out/kernel");  // [heads, head_dim, hidden] = [hidden, hidden]
  w.out_bias = out.param(att + "out/bias");
  w.ln2_scale = out.param(b + "LayerNorm_2/scale");
  w.ln2_bias = out.param(b + "LayerNorm_2/bias");
  w.mlp0_kernel = out.param(b + "MlpBlock_3/Dense_0/kernel");
  w.mlp0_bias = out.param(b + "MlpBlock_3/Dense_0/bias");
  w.mlp1_kernel = out.param(b + "MlpBlock_3/Dense_1/kernel");
  w.mlp1_bias = out.param(b + "MlpBlock_3/Dense_1/bias");
  return w;
}

GroupNormParams<const float*> rebase(const GroupNormParams<int64_t>& g, const float* base) {
  return {base + g.scale, base + g.bias};
}

}  // namespace

WeightPointers ModelWeights::at(const float* base) const {
  const ModelParams<int64_t>& o = offsets;
  WeightPointers p;
  p.conv_root = base + o.conv_root;
  p.gn_root = rebase(o.gn_root, base);
  p.conv_proj = base + o.conv_proj;
  p.conv1 = base + o.conv1;
  p.conv2 = base + o.conv2;
  p.conv3 = base + o.conv3;
  p.gn_proj = rebase(o.gn_proj, base);
  p.gn1 = rebase(o.gn1, base);
  p.gn2 = rebase(o.gn2, base);
  p.gn3 = rebase(o.gn3, base);
  p.embedding_kernel = base + o.embedding_kernel;
  p.embedding_bias = base + o.embedding_bias;
  p.pos_embedding = base + o.pos_embedding;
  p.scale_embedding = base + o.scale_embedding;
  p.cls = base + o.cls;
  for (const EncoderBlockParams<int64_t>& b : o.blocks)
    p.blocks.push_back({base + b.ln0_scale, base + b.ln0_bias, base + b.qkv_kernel,
                        base + b.qkv_bias, base + b.out_kernel, base + b.out_bias,
                        base + b.ln2_scale, base + b.ln2_bias, base + b.mlp0_kernel,
                        base + b.mlp0_bias, base + b.mlp1_kernel, base + b.mlp1_bias});
  p.encoder_norm_scale = base + o.encoder_norm_scale;
  p.encoder_norm_bias = base + o.encoder_norm_bias;
  p.head_kernel = base + o.head_kernel;
  p.head_bias = base + o.head_bias;
  return p;
}

ModelWeights prepare_model_weights(const WeightsFile& f) {
  ModelWeights w;
  w.config = f.config;
  BlockBuilder out(f);
  ModelParams<int64_t>& o = w.offsets;
  o.conv_root = out.conv("conv_root/kernel");
  o.gn_root = out.group_norm("gn_root");
  const std::string unit = "block1/unit1/";
  o.conv_proj = out.conv(unit + "conv_proj/kernel");
  o.conv1 = out.conv(unit + "conv1/kernel");
  o.conv2 = out.conv(unit + "conv2/kernel");
  o.conv3 = out.conv(unit + "conv3/kernel");
  o.gn_proj = out.group_norm(unit + "gn_proj");
  o.gn1 = out.group_norm(unit + "gn1");
  o.gn2 = out.group_norm(unit + "gn2");
  o.gn3 = out.group_norm(unit + "gn3");
  o.embedding_kernel = out.param("embedding/kernel");
  o.embedding_bias = out.param("embedding/bias");
  o.pos_embedding = out.param("Transformer/posembed_input/pos_embedding");
  o.scale_embedding = out.param("Transformer/scaleembed_input/scale_embedding");
  o.cls = out.param("Transformer/cls");
  for (int i = 0; i < f.config.num_layers; ++i)
    o.blocks.push_back(encoder_block(f, out, i, f.config.hidden_size));
  o.encoder_norm_scale = out.param("Transformer/encoder_norm/scale");
  o.encoder_norm_bias = out.param("Transformer/encoder_norm/bias");
  o.head_kernel = out.param("head/kernel");
  o.head_bias = out.param("head/bias");
  w.block = out.take();
  return w;
}

}  // namespace musiq
