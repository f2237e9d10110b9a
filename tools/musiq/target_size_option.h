// `--target-size W H`, shared by `musiq score` and `musiq bench`.
#pragma once
#include <CLI/CLI.hpp>

#include "engine/musiq.h"

namespace musiq::cli {

// Adds the option to `command`; when given, it sets `target` (both sides >= 1).
CLI::Option* add_target_size_option(CLI::App& command, TargetSize& target);

}  // namespace musiq::cli
