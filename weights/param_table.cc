#include "weights/param_table.h"

namespace musiq {

std::string encoder_block_prefix(int block) {
  return "Transformer/encoderblock_" + std::to_string(block) + "/";
}

std::vector<ParamSpec> expected_params(const ModelConfig& c) {
  const int64_t hidden = c.hidden_size, heads = c.num_heads, head_dim = c.head_dim();
  const int64_t w = kStemWidth, out = kStemOutWidth;
  const int64_t grid = c.hse_grid_size;
  const int64_t stem_values = int64_t{8} * 8 * out;  // 32x32 patch -> 8x8x256 map
  std::vector<ParamSpec> p = {
      {"conv_root/kernel", {7, 7, 3, w}},
      {"gn_root/scale", {1, 1, 1, w}},
      {"gn_root/bias", {1, 1, 1, w}},
      {"block1/unit1/conv_proj/kernel", {1, 1, w, out}},
      {"block1/unit1/gn_proj/scale", {1, 1, 1, out}},
      {"block1/unit1/gn_proj/bias", {1, 1, 1, out}},
      {"block1/unit1/conv1/kernel", {1, 1, w, w}},
      {"block1/unit1/gn1/scale", {1, 1, 1, w}},
      {"block1/unit1/gn1/bias", {1, 1, 1, w}},
      {"block1/unit1/conv2/kernel", {3, 3, w, w}},
      {"block1/unit1/gn2/scale", {1, 1, 1, w}},
      {"block1/unit1/gn2/bias", {1, 1, 1, w}},
      {"block1/unit1/conv3/kernel", {1, 1, w, out}},
      {"block1/unit1/gn3/scale", {1, 1, 1, out}},
      {"block1/unit1/gn3/bias", {1, 1, 1, out}},
      {"embedding/kernel", {stem_values, hidden}},
      {"embedding/bias", {hidden}},
      {"Transformer/posembed_input/pos_embedding", {1, grid * grid, hidden}},
      {"Transformer/scaleembed_input/scale_embedding", {1, c.num_scales(), hidden}},
      {"Transformer/cls", {1, 1, hidden}},
  };
  for (int i = 0; i < c.num_layers; ++i) {
    const std::string b = encoder_block_prefix(i);
    const std::string att = b + "MultiHeadDotProductAttention_1/";
    p.push_back({b + "LayerNorm_0/scale", {hidden}});
    p.push_back({b + "LayerNorm_0/bias", {hidden}});
    for (const char* proj : {"query", "key", "value"}) {
      p.push_back({att + proj + "/kernel", {hidden, heads, head_dim}});
      p.push_back({att + proj + "/bias", {heads, head_dim}});
    }
    p.push_back({att + "out/kernel", {heads, head_dim, hidden}});
    p.push_back({att + "out/bias", {hidden}});
    p.push_back({b + "LayerNorm_2/scale", {hidden}});
    p.push_back({b + "LayerNorm_2/bias", {hidden}});
    p.push_back({b + "MlpBlock_3/Dense_0/kernel", {hidden, c.mlp_dim}});
    p.push_back({b + "MlpBlock_3/Dense_0/bias", {c.mlp_dim}});
    p.push_back({b + "MlpBlock_3/Dense_1/kernel", {c.mlp_dim, hidden}});
    p.push_back({b + "MlpBlock_3/Dense_1/bias", {hidden}});
  }
  p.push_back({"Transformer/encoder_norm/scale", {hidden}});
  p.push_back({"Transformer/encoder_norm/bias", {hidden}});
  p.push_back({"head/kernel", {hidden, c.num_classes}});
  p.push_back({"head/bias", {c.num_classes}});
  return p;
}

}  // namespace musiq
