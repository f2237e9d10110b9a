// The CPU pass's thread count under load (engine/model/thread_budget.h, cpu/threads.h).
// How much it helps is measured, not tested: tools/torch-compare --busy-neighbour.
#include <gtest/gtest.h>
#include <omp.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "cpu/threads.h"
#include "engine/model/thread_budget.h"

namespace musiq {
namespace {

TEST(ThreadBudget, UsesTheCoresOthersLeaveFree) {
  EXPECT_EQ(threads_for_load(2, 2, 0.0), 2);
  EXPECT_EQ(threads_for_load(2, 2, 0.3), 2);
  EXPECT_EQ(threads_for_load(2, 2, 0.67), 1);  // a neighbour sharing two cores with us
  EXPECT_EQ(threads_for_load(2, 2, 1.0), 1);   // ... or running on one alone
  EXPECT_EQ(threads_for_load(2, 2, 7.5), 1);   // never none
  EXPECT_EQ(threads_for_load(16, 16, 3.2), 13);
  EXPECT_EQ(threads_for_load(4, 16, 3.2), 4);  // never more than OMP_NUM_THREADS
  EXPECT_EQ(threads_for_load(1, 2, 0.0), 1);
}

TEST(ThreadBudget, OthersAreTheBusyTicksThatAreNotOurs) {
  const CpuTicks before{2, 1000, 400, 100};
  // 200 ticks passed on 2 CPUs (100 each); 150 busy, 50 of them ours: one core's worth.
  EXPECT_DOUBLE_EQ(others_busy_cores(before, {2, 1200, 550, 150}), 1.0);
  EXPECT_DOUBLE_EQ(others_busy_cores(before, {2, 1200, 450, 150}), 0.0);
  // Our ticks and the CPUs' can disagree by a tick or two: never below zero.
  EXPECT_DOUBLE_EQ(others_busy_cores(before, {2, 1200, 450, 160}), 0.0);
  EXPECT_DOUBLE_EQ(others_busy_cores(before, before), 0.0);
}

TEST(ThreadBudget, ReadsThisMachinesTicks) {
  CpuTicks a;
  ASSERT_TRUE(read_cpu_ticks(a)) << "/proc/stat or /proc/self/stat unreadable";
  EXPECT_GE(a.cpus, 1);
  EXPECT_GT(a.total, 0);
  EXPECT_GE(a.busy, a.ours - 2 * a.cpus) << "our own ticks are part of the busy ones";
  // Spin for 0.3 s: our own ticks grow.
  const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(300);
  volatile uint64_t spin = 0;
  while (std::chrono::steady_clock::now() < end) spin = spin + 1;
  CpuTicks b;
  ASSERT_TRUE(read_cpu_ticks(b));
  EXPECT_GT(b.ours, a.ours);
  EXPECT_GE(b.total, a.total);
}

TEST(ThreadBudget, GivesACoreToABusyNeighbour) {
  CpuTicks t;
  ASSERT_TRUE(read_cpu_ticks(t));
  if (t.cpus < 2) GTEST_SKIP() << "one CPU: nothing to give up";
  ThreadBudget budget(t.cpus);
  const pid_t neighbour = fork();
  ASSERT_GE(neighbour, 0);
  if (neighbour == 0) {
    volatile uint64_t spin = 0;
    for (;;) spin = spin + 1;  // until killed
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  const int threads = budget.next();
  kill(neighbour, SIGKILL);
  waitpid(neighbour, nullptr, 0);
  EXPECT_LE(threads, t.cpus - 1);
  EXPECT_GE(threads, 1);
}

TEST(CpuThreads, ComeBackUpFromOneThreadAndStayWithinTheMost) {
  const int most = cpu::max_threads();
  cpu::set_threads(1);
  EXPECT_EQ(omp_get_max_threads(), 1);
  cpu::set_threads(most);
  EXPECT_EQ(omp_get_max_threads(), most);
  cpu::set_threads(most + 5);
  EXPECT_EQ(omp_get_max_threads(), most);
  cpu::set_threads(0);
  EXPECT_EQ(omp_get_max_threads(), 1);
  cpu::set_threads(most);
}

}  // namespace
}  // namespace musiq
