#include "tests/cuda_emulator/settings.h"

#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <set>
#include <thread>

namespace cuda_emulator {
namespace {

[[noreturn]] void bad_setting(const char* name, const std::string& value) {
  std::fprintf(stderr, "cuda emulator: %s=%s is not a valid setting (README.md)\n", name,
               value.c_str());
  std::abort();
}

Settings read_settings() {
  Settings s;
  s.threads = static_cast<int>(std::thread::hardware_concurrency());
  if (s.threads < 1) s.threads = 1;
  if (const char* v = std::getenv("MUSIQ_CUDA_EMULATOR_ORDER")) {
    const std::string order = v;
    if (order == "forward") {
      s.order = ThreadOrder::kForward;
    } else if (order == "reverse") {
      s.order = ThreadOrder::kReverse;
    } else if (order.rfind("random", 0) == 0) {
      s.order = ThreadOrder::kRandom;
      if (order.size() > 6) {
        if (order[6] != ':' || order.size() == 7) bad_setting("MUSIQ_CUDA_EMULATOR_ORDER", order);
        char* end = nullptr;
        s.seed = std::strtoull(order.c_str() + 7, &end, 10);
        if (*end != '\0') bad_setting("MUSIQ_CUDA_EMULATOR_ORDER", order);
      }
    } else {
      bad_setting("MUSIQ_CUDA_EMULATOR_ORDER", order);
    }
  }
  if (const char* v = std::getenv("MUSIQ_CUDA_EMULATOR_STRICT")) {
    const std::string strict = v;
    if (strict != "0" && strict != "1") bad_setting("MUSIQ_CUDA_EMULATOR_STRICT", strict);
    s.strict = strict == "1";
  }
  if (const char* v = std::getenv("MUSIQ_CUDA_EMULATOR_THREADS")) {
    char* end = nullptr;
    const long n = std::strtol(v, &end, 10);
    if (*end != '\0' || n < 1 || n > 1024) bad_setting("MUSIQ_CUDA_EMULATOR_THREADS", v);
    s.threads = static_cast<int>(n);
  }
  return s;
}

}  // namespace

const Settings& settings() {
  static const Settings s = read_settings();
  return s;
}

void violation(const std::string& report) {
  if (settings().strict) fatal(report);
  static std::mutex mutex;
  static std::set<std::string> printed;
  std::lock_guard<std::mutex> lock(mutex);
  if (printed.insert(report).second) std::fprintf(stderr, "cuda emulator: %s\n", report.c_str());
}

void fatal(const std::string& report) {
  std::fprintf(stderr, "cuda emulator: %s\n", report.c_str());
  std::fflush(stderr);
  std::abort();
}

}  // namespace cuda_emulator
