// How the emulator runs and what it does when a kernel or the host code breaks a CUDA
// rule, from the environment (README.md beside this file):
//   MUSIQ_CUDA_EMULATOR_ORDER    forward | reverse | random[:seed]   (default forward)
//   MUSIQ_CUDA_EMULATOR_STRICT   1 (default): a broken rule aborts the process with its
//                                report; 0: the report is printed and the run goes on
//   MUSIQ_CUDA_EMULATOR_THREADS  OS threads that run blocks (default: all cores)
#pragma once
#include <cstdint>
#include <string>

namespace cuda_emulator {

enum class ThreadOrder { kForward, kReverse, kRandom };

struct Settings {
  ThreadOrder order = ThreadOrder::kForward;
  uint64_t seed = 0;
  bool strict = true;
  int threads = 1;
};
const Settings& settings();

// A CUDA rule broken (a mask naming an exited lane, a host pointer given to a kernel, ...):
// aborts in strict mode, else prints the report once per distinct message and returns.
void violation(const std::string& report);
// A state the emulator cannot go on from (a deadlock): always aborts with the report.
[[noreturn]] void fatal(const std::string& report);

}  // namespace cuda_emulator
