// The musiq CLI's subcommands. Each registers its options on the app and returns the
// function that runs it; the function returns the process exit code.
#pragma once
#include <CLI/CLI.hpp>
#include <exception>
#include <functional>
#include <string>

namespace musiq::cli {

// Exit codes: 0 all good, 1 some images failed, 2 usage, set-up or output error;
// 128 + the signal number when stopped by SIGINT or SIGTERM (musiq score; musiq serve
// finishes its requests and exits 0).
inline constexpr int kExitImagesFailed = 1;
inline constexpr int kExitUsage = 2;

using Command = std::function<int()>;

// An option check: a whole number from 1 up, or the reason it is not.
inline std::string positive_count(const std::string& text) {
  try {
    size_t used = 0;
    const long long value = std::stoll(text, &used);
    if (used == text.size() && value >= 1) return "";
  } catch (const std::exception&) {
  }
  return "'" + text + "' is not a whole number from 1 up";
}

Command add_score_command(CLI::App& app);
Command add_preprocess_command(CLI::App& app);
Command add_bench_command(CLI::App& app);
Command add_info_command(CLI::App& app);
Command add_serve_command(CLI::App& app);

}  // namespace musiq::cli
