// `--precision fp32|bf16|tf32`, shared by `musiq score` and `musiq bench`.
#pragma once
#include <CLI/CLI.hpp>
#include <string>

namespace musiq::cli {

// Adds the option to `command`; `precision` keeps its default ("fp32") unless given.
CLI::Option* add_precision_option(CLI::App& command, std::string& precision);

}  // namespace musiq::cli
