// The model's parameters, each named once: ModelParams has a field per tensor the forward
// pass reads, and for_each_param visits every field with the official parameters it is
// made of (names without the `opt/target/` prefix, shapes from the config; spec section 5)
// and how the engine lays it out. All else is derived from that one list: the datasets a
// weights file must hold (expected_params), the weights block and its pointers on either
// device (engine/model/model_weights.h), the CPU's packed kernels (engine/model/cpu_model.cc).
// tools/musiq_params.py spells the table again for the Python tools, which run without a
// build; tests/param_table_test.cc requires the two to agree.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "weights/config.h"

namespace musiq {

struct ParamSpec {
  std::string name;
  std::vector<int64_t> shape;
};

enum class ParamKind {
  kValues,       // read as they are: norms' scales and biases, biases, embeddings
  kDenseKernel,  // a GEMM's [k, n] weights, n the last dimension (packed on the CPU)
  kConvKernel,   // HWIO, weight-standardized at load, then as kDenseKernel
};

// One field of ModelParams: `sources` side by side along the last axis of `shape` (q, k
// and v fused into one matrix), or a single parameter as the file has it.
struct ParamField {
  ParamKind kind;
  std::vector<int64_t> shape;
  std::vector<ParamSpec> sources;
};

template <typename P>
struct GroupNormParams {
  P scale, bias;
};

template <typename P>
struct EncoderBlockParams {
  P ln0_scale, ln0_bias;
  P qkv_kernel, qkv_bias;
  P out_kernel, out_bias;
  P ln2_scale, ln2_bias;
  P mlp0_kernel, mlp0_bias;
  P mlp1_kernel, mlp1_bias;
};

// P is what the forward pass holds per tensor: a pointer into the weights on its device.
// The shapes are for_each_param's.
template <typename P>
struct ModelParams {
  P conv_root;
  GroupNormParams<P> gn_root;
  P conv_proj, conv1, conv2, conv3;
  GroupNormParams<P> gn_proj, gn1, gn2, gn3;
  P embedding_kernel, embedding_bias;
  P pos_embedding, scale_embedding, cls;
  std::vector<EncoderBlockParams<P>> blocks;
  P encoder_norm_scale, encoder_norm_bias;
  P head_kernel, head_bias;
};

// "Transformer/encoderblock_3/" for block 3.
std::string encoder_block_prefix(int block);

// Calls f(field, ParamField) for every field of `p`, in tools/musiq_params.py's order but
// for each block's q, k and v: their kernels come before their biases. Sizes p.blocks first.
template <typename P, typename F>
void for_each_param(ModelParams<P>& p, const ModelConfig& c, F&& f) {
  using enum ParamKind;
  const int64_t hidden = c.hidden_size, heads = c.num_heads, head_dim = c.head_dim();
  const int64_t mlp = c.mlp_dim, w = kStemWidth, out = kStemOutWidth;
  const int64_t grid = c.hse_grid_size;
  const int64_t stem_values = int64_t{8} * 8 * out;  // 32x32 patch -> 8x8x256 map
  auto param = [&f](P& field, ParamKind kind, const std::string& name,
                    const std::vector<int64_t>& shape) {
    f(field, ParamField{kind, shape, {{name, shape}}});
  };
  // Old flax GroupNorm keeps [1,1,1,C] parameters.
  auto group_norm = [&](GroupNormParams<P>& g, const std::string& prefix, int64_t channels) {
    param(g.scale, kValues, prefix + "/scale", {1, 1, 1, channels});
    param(g.bias, kValues, prefix + "/bias", {1, 1, 1, channels});
  };
  auto layer_norm = [&](P& scale, P& bias, const std::string& prefix) {
    param(scale, kValues, prefix + "/scale", {hidden});
    param(bias, kValues, prefix + "/bias", {hidden});
  };

  // Patch stem (resnet.py).
  param(p.conv_root, kConvKernel, "conv_root/kernel", {7, 7, 3, w});
  group_norm(p.gn_root, "gn_root", w);
  const std::string unit = "block1/unit1/";
  param(p.conv_proj, kConvKernel, unit + "conv_proj/kernel", {1, 1, w, out});
  group_norm(p.gn_proj, unit + "gn_proj", out);
  param(p.conv1, kConvKernel, unit + "conv1/kernel", {1, 1, w, w});
  group_norm(p.gn1, unit + "gn1", w);
  param(p.conv2, kConvKernel, unit + "conv2/kernel", {3, 3, w, w});
  group_norm(p.gn2, unit + "gn2", w);
  param(p.conv3, kConvKernel, unit + "conv3/kernel", {1, 1, w, out});
  group_norm(p.gn3, unit + "gn3", out);
  param(p.embedding_kernel, kDenseKernel, "embedding/kernel", {stem_values, hidden});
  param(p.embedding_bias, kValues, "embedding/bias", {hidden});

  // Encoder (multiscale_transformer_utils.py).
  param(p.pos_embedding, kValues, "Transformer/posembed_input/pos_embedding",
        {1, grid * grid, hidden});
  param(p.scale_embedding, kValues, "Transformer/scaleembed_input/scale_embedding",
        {1, c.num_scales(), hidden});
  param(p.cls, kValues, "Transformer/cls", {1, 1, hidden});
  p.blocks.resize(size_t(c.num_layers));
  for (int i = 0; i < c.num_layers; ++i) {
    EncoderBlockParams<P>& b = p.blocks[size_t(i)];
    const std::string block = encoder_block_prefix(i);
    const std::string att = block + "MultiHeadDotProductAttention_1/";
    layer_norm(b.ln0_scale, b.ln0_bias, block + "LayerNorm_0");
    // [hidden, heads, head_dim] is [hidden, hidden] row-major; fused row by row as [q | k | v].
    ParamField qkv_kernel{kDenseKernel, {hidden, 3 * hidden}, {}};
    ParamField qkv_bias{kValues, {3 * hidden}, {}};
    for (const char* projection : {"query", "key", "value"}) {
      qkv_kernel.sources.push_back({att + projection + "/kernel", {hidden, heads, head_dim}});
      qkv_bias.sources.push_back({att + projection + "/bias", {heads, head_dim}});
    }
    f(b.qkv_kernel, qkv_kernel);
    f(b.qkv_bias, qkv_bias);
    // [heads, head_dim, hidden] = [hidden, hidden].
    param(b.out_kernel, kDenseKernel, att + "out/kernel", {heads, head_dim, hidden});
    param(b.out_bias, kValues, att + "out/bias", {hidden});
    layer_norm(b.ln2_scale, b.ln2_bias, block + "LayerNorm_2");
    param(b.mlp0_kernel, kDenseKernel, block + "MlpBlock_3/Dense_0/kernel", {hidden, mlp});
    param(b.mlp0_bias, kValues, block + "MlpBlock_3/Dense_0/bias", {mlp});
    param(b.mlp1_kernel, kDenseKernel, block + "MlpBlock_3/Dense_1/kernel", {mlp, hidden});
    param(b.mlp1_bias, kValues, block + "MlpBlock_3/Dense_1/bias", {hidden});
  }
  layer_norm(p.encoder_norm_scale, p.encoder_norm_bias, "Transformer/encoder_norm");
  param(p.head_kernel, kDenseKernel, "head/kernel", {hidden, c.num_classes});
  param(p.head_bias, kValues, "head/bias", {c.num_classes});
}

// The fields in for_each_param's order.
std::vector<ParamField> param_fields(const ModelConfig& config);

// Every parameter a weights file must hold, in for_each_param's order.
std::vector<ParamSpec> expected_params(const ModelConfig& config);

}  // namespace musiq
