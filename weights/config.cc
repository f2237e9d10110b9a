#include "weights/config.h"

#include <algorithm>
#include <cstdint>
#include <nlohmann/json.hpp>

#include "base/error.h"

namespace musiq {
namespace {

int positive_int(const nlohmann::json& j, const char* key, const std::string& origin) {
  if (!j.contains(key)) throw Error(origin + ": config has no \"" + key + "\"");
  const auto& v = j.at(key);
  if (!v.is_number_integer() || v.get<long long>() <= 0 || v.get<long long>() > 1'000'000)
    throw Error(origin + ": config \"" + key + "\" must be a positive integer, got " + v.dump());
  return v.get<int>();
}

}  // namespace

ModelConfig parse_model_config(const std::string& text, const std::string& origin) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw Error(origin + ": config attribute is not valid JSON (" + e.what() + ")");
  }
  if (!j.is_object()) throw Error(origin + ": config attribute is not a JSON object");
  ModelConfig c;
  c.patch_size = positive_int(j, "patch_size", origin);
  c.hse_grid_size = positive_int(j, "hse_grid_size", origin);
  c.hidden_size = positive_int(j, "hidden_size", origin);
  c.num_layers = positive_int(j, "num_layers", origin);
  c.num_heads = positive_int(j, "num_heads", origin);
  c.mlp_dim = positive_int(j, "mlp_dim", origin);
  c.num_classes = positive_int(j, "num_classes", origin);
  if (!j.contains("max_seq_len_from_original_res") ||
      !j.at("max_seq_len_from_original_res").is_number_integer())
    throw Error(origin + ": config needs an integer \"max_seq_len_from_original_res\"");
  const auto max_seq_len = j.at("max_seq_len_from_original_res").get<long long>();
  if (max_seq_len < -1 || max_seq_len > INT32_MAX)
    throw Error(origin + ": config \"max_seq_len_from_original_res\" must be -1 (every "
                         "native patch) or a length from 0 up, got " + std::to_string(max_seq_len));
  c.max_seq_len_from_original_res = static_cast<int>(max_seq_len);
  if (!j.contains("longer_side_lengths") || !j.at("longer_side_lengths").is_array())
    throw Error(origin + ": config needs a list \"longer_side_lengths\"");
  c.longer_side_lengths.clear();
  for (const auto& v : j.at("longer_side_lengths")) {
    if (!v.is_number_integer() || v.get<long long>() <= 0 || v.get<long long>() > 100'000)
      throw Error(origin + ": config \"longer_side_lengths\" must hold positive integers");
    c.longer_side_lengths.push_back(v.get<int>());
  }
  // The official preprocessing sorts the scales so that scale ids are deterministic.
  std::sort(c.longer_side_lengths.begin(), c.longer_side_lengths.end());

  if (c.patch_size != 32)
    throw Error(origin + ": config patch_size must be 32 (the stem feeds an 8x8x256 map "
                         "into embedding/kernel), got " + std::to_string(c.patch_size));
  if (c.hidden_size % c.num_heads != 0)
    throw Error(origin + ": config num_heads (" + std::to_string(c.num_heads) +
                ") does not divide hidden_size (" + std::to_string(c.hidden_size) + ")");
  return c;
}

std::string model_config_to_json(const ModelConfig& c) {
  nlohmann::json j = {{"patch_size", c.patch_size},
                      {"hse_grid_size", c.hse_grid_size},
                      {"longer_side_lengths", c.longer_side_lengths},
                      {"max_seq_len_from_original_res", c.max_seq_len_from_original_res},
                      {"hidden_size", c.hidden_size},
                      {"num_layers", c.num_layers},
                      {"num_heads", c.num_heads},
                      {"mlp_dim", c.mlp_dim},
                      {"num_classes", c.num_classes}};
  return j.dump();
}

}  // namespace musiq
