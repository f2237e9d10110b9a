// Model configuration: the `config` JSON of a weights file (weights/FORMAT.md).
#pragma once
#include <string>
#include <vector>

namespace musiq {

struct ModelConfig {
  int patch_size = 32;
  int hse_grid_size = 10;                      // hashed spatial grid G (G*G positions)
  std::vector<int> longer_side_lengths{224, 384};  // sorted resized scales
  int max_seq_len_from_original_res = -1;      // -1: every native patch
  int hidden_size = 384;
  int num_layers = 14;
  int num_heads = 6;
  int mlp_dim = 1152;
  int num_classes = 1;

  int head_dim() const { return hidden_size / num_heads; }
  int num_scales() const { return static_cast<int>(longer_side_lengths.size()) + 1; }
  int patch_values() const { return patch_size * patch_size * 3; }
};

// The patch stem is fixed by the official code (musiq/model/multiscale_transformer.py).
inline constexpr int kStemWidth = 64;         // RESNET_TOKEN_DIM
inline constexpr int kStemOutWidth = 256;     // block1 bottleneck output (4 x 64)
inline constexpr int kStemGroups = 32;
inline constexpr float kRootGroupNormEps = 1e-6f;
inline constexpr float kUnitGroupNormEps = 1e-4f;
inline constexpr float kLayerNormEps = 1e-6f;

// Parses and checks the JSON; throws musiq::Error naming `origin` and the bad key.
ModelConfig parse_model_config(const std::string& json, const std::string& origin);
std::string model_config_to_json(const ModelConfig& config);

}  // namespace musiq
