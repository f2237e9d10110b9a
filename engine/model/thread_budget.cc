#include "engine/model/thread_budget.h"

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>
#include <string>

namespace musiq {

int threads_for_load(int most, int cpus, double others_busy) {
  const double free_cores = cpus - std::max(0.0, others_busy);
  return std::clamp(static_cast<int>(std::lround(free_cores)), 1, std::max(1, most));
}

bool read_cpu_ticks(CpuTicks& out) {
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0) return false;
  std::ifstream stat("/proc/stat");
  if (!stat) return false;
  CpuTicks t;
  std::string line;
  while (std::getline(stat, line)) {
    // Per-CPU lines: "cpuN user nice system idle iowait irq softirq steal guest guest_nice".
    if (line.compare(0, 3, "cpu") != 0 || line.size() < 4 || line[3] < '0' || line[3] > '9')
      continue;
    std::istringstream fields(line.substr(3));
    int cpu = 0;
    int64_t user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0,
            steal = 0;
    if (!(fields >> cpu >> user >> nice >> system >> idle >> iowait >> irq >> softirq >> steal))
      return false;
    if (cpu < 0 || cpu >= CPU_SETSIZE || !CPU_ISSET(cpu, &allowed)) continue;
    ++t.cpus;
    // Steal is time the hypervisor gave to someone else: busy, as far as we can tell.
    const int64_t busy = user + nice + system + irq + softirq + steal;
    t.busy += busy;
    t.total += busy + idle + iowait;
  }
  // Our own utime and stime, fields 14 and 15, counted after the ")" that ends the name.
  std::ifstream self("/proc/self/stat");
  std::string all((std::istreambuf_iterator<char>(self)), std::istreambuf_iterator<char>());
  const size_t name_end = all.rfind(')');
  if (name_end == std::string::npos) return false;
  std::istringstream rest(all.substr(name_end + 1));
  std::string skip;
  for (int field = 3; field <= 13; ++field) rest >> skip;
  int64_t utime = 0, stime = 0;
  if (!(rest >> utime >> stime) || t.cpus == 0) return false;
  t.ours = utime + stime;
  out = t;
  return true;
}

double others_busy_cores(const CpuTicks& before, const CpuTicks& after) {
  const int64_t total = after.total - before.total;
  if (total <= 0 || after.cpus <= 0) return 0.0;
  const int64_t others = (after.busy - before.busy) - (after.ours - before.ours);
  return std::max<int64_t>(0, others) * double(after.cpus) / double(total);
}

ThreadBudget::ThreadBudget(int most)
    : most_(std::max(1, most)),
      current_(most_),
      readable_(read_cpu_ticks(last_)),
      window_(std::chrono::duration_cast<std::chrono::steady_clock::duration>(
          std::chrono::duration<double>(double(kWindowTicksPerCpu) /
                                        double(std::max(1L, sysconf(_SC_CLK_TCK)))))),
      chosen_at_(std::chrono::steady_clock::now()) {}

int ThreadBudget::next() {
  if (!readable_ || most_ == 1) return current_;
  // Reading /proc takes ~40 us: skip it while the window cannot have passed.
  const auto clock = std::chrono::steady_clock::now();
  if (clock - chosen_at_ < window_) return current_;
  CpuTicks now;
  if (!read_cpu_ticks(now) || now.cpus != last_.cpus) {
    readable_ = read_cpu_ticks(last_);
    return current_;
  }
  if (now.total - last_.total < kWindowTicksPerCpu * now.cpus) return current_;
  current_ = threads_for_load(most_, now.cpus, others_busy_cores(last_, now));
  last_ = now;
  chosen_at_ = clock;
  return current_;
}

}  // namespace musiq
