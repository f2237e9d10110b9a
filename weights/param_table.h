// Every parameter a MUSIQ weights file must hold: official name (without the
// `opt/target/` prefix) and shape, derived from the config (spec section 5).
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

std::vector<ParamSpec> expected_params(const ModelConfig& config);

// "Transformer/encoderblock_3/" for block 3.
std::string encoder_block_prefix(int block);

}  // namespace musiq
