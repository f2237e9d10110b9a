// cpu/parallel_for.h: every index once, across the ops' threads at the top level, and on the
// calling thread with no nested region inside another region.
#include <gtest/gtest.h>
#include <omp.h>

#include <atomic>
#include <vector>

#include "cpu/parallel_for.h"
#include "cpu/threads.h"

namespace musiq {
namespace {

using cpu::parallel_for;
using cpu::Schedule;

// Each index's visits, and whether any iteration ran inside a deeper region than `level`
// or on a thread other than `thread` (when `thread` >= 0).
struct Visits {
  std::vector<std::atomic<int>> count;
  std::atomic<bool> deeper{false}, other_thread{false};
  explicit Visits(int64_t n) : count(size_t(n)) {}

  template <Schedule kSchedule>
  void run(int level, int thread) {
    parallel_for<kSchedule>(static_cast<int64_t>(count.size()), [&](int64_t i) {
      ++count[size_t(i)];
      if (omp_get_level() > level) deeper = true;
      if (thread >= 0 && omp_get_thread_num() != thread) other_thread = true;
    });
  }
  bool each_once() const {
    for (const auto& c : count)
      if (c != 1) return false;
    return true;
  }
};

TEST(ParallelFor, VisitsEachIndexOnce) {
  for (const int64_t n : {0, 1, 2, 7, 1000}) {
    Visits s(n), d(n);
    s.run<Schedule::kStatic>(1, -1);
    d.run<Schedule::kDynamic>(1, -1);
    EXPECT_TRUE(s.each_once()) << n;
    EXPECT_TRUE(d.each_once()) << n;
  }
}

TEST(ParallelFor, InsideARegionStaysOnTheCallingThread) {
  std::atomic<bool> all_once{true}, deeper{false}, other_thread{false};
#pragma omp parallel num_threads(2)
  {
    Visits v(300);
    v.run<Schedule::kStatic>(omp_get_level(), omp_get_thread_num());
    v.run<Schedule::kDynamic>(omp_get_level(), omp_get_thread_num());
    for (const auto& c : v.count)
      if (c != 2) all_once = false;
    if (v.deeper) deeper = true;
    if (v.other_thread) other_thread = true;
  }
  EXPECT_TRUE(all_once);
  EXPECT_FALSE(deeper) << "entered a nested region";
  EXPECT_FALSE(other_thread);
}

TEST(ParallelFor, OneThreadEntersNoRegion) {
  cpu::set_threads(1);
  Visits v(100);
  v.run<Schedule::kStatic>(0, 0);
  v.run<Schedule::kDynamic>(0, 0);
  cpu::set_threads(cpu::max_threads());
  EXPECT_FALSE(v.deeper);
  EXPECT_FALSE(v.other_thread);
}

}  // namespace
}  // namespace musiq
