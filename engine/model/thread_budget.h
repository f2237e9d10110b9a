// How many threads the CPU forward pass uses, chosen again at each stage from what other
// processes leave free. A parallel loop ends when its slowest thread does, and threads
// spin at its end: with another process busy on one of two cores, two threads took about
// 1.5x as long as one on a 1024x768 photo. So while other processes keep cores busy, the
// pass uses only the cores they leave.
#pragma once
#include <chrono>
#include <cstdint>
#include <vector>

namespace musiq {

// The threads to use: the cores left after `others_busy` cores' worth of other processes'
// work, rounded to the nearest whole core, within [1, most].
int threads_for_load(int most, int cpus, double others_busy);

// CPU time, in clock ticks, on the CPUs this process may run on (Linux /proc/stat and
// /proc/self/stat): all of it, busy by anyone, and this process's own.
struct CpuTicks {
  int cpus = 0;
  int64_t total = 0, busy = 0, ours = 0;
};
// False where /proc cannot be read (not Linux, or restricted): the budget then stays at
// its most.
bool read_cpu_ticks(CpuTicks& out);

// Cores busy with other processes' work between two readings; 0 if the window is empty.
double others_busy_cores(const CpuTicks& before, const CpuTicks& after);

class ThreadBudget {
 public:
  explicit ThreadBudget(int most);
  // Threads for the next stage: re-chosen when at least kWindowTicksPerCpu have passed on
  // each CPU since the last choice (a shorter window is too coarse at 100 ticks a second),
  // else the last choice. /proc is read only once that much time can have passed.
  int next();

  static constexpr int64_t kWindowTicksPerCpu = 10;

 private:
  int most_, current_;
  CpuTicks last_;   // before readable_, whose initialiser fills it
  bool readable_;
  std::chrono::steady_clock::duration window_;  // kWindowTicksPerCpu ticks
  std::chrono::steady_clock::time_point chosen_at_;
};

}  // namespace musiq
