#include "weights/param_table.h"

namespace musiq {

std::string encoder_block_prefix(int block) {
  return "Transformer/encoderblock_" + std::to_string(block) + "/";
}

std::vector<ParamField> param_fields(const ModelConfig& config) {
  std::vector<ParamField> fields;
  ModelParams<char> unused;  // only the visit's order and fields are wanted
  for_each_param(unused, config, [&](char&, const ParamField& field) { fields.push_back(field); });
  return fields;
}

std::vector<ParamSpec> expected_params(const ModelConfig& config) {
  std::vector<ParamSpec> params;
  for (const ParamField& field : param_fields(config))
    params.insert(params.end(), field.sources.begin(), field.sources.end());
  return params;
}

}  // namespace musiq
