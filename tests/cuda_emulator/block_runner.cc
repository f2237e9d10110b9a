#include "tests/cuda_emulator/block_runner.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <numeric>
#include <random>
#include <sstream>
#include <thread>
#include <vector>

#include "tests/cuda_emulator/fiber.h"
#include "tests/cuda_emulator/poison.h"
#include "tests/cuda_emulator/settings.h"
#include "tests/cuda_emulator/thread_state.h"

namespace cuda_emulator {

constinit thread_local ThreadState* current_thread = nullptr;

namespace {

#ifdef CUDA_EMULATOR_ASAN
constexpr size_t kStackBytes = 256 * 1024;  // the kernels' AddressSanitizer redzones need room
#else
constexpr size_t kStackBytes = 64 * 1024;
#endif
constexpr size_t kCanaryBytes = 64;  // after dynamic shared memory: a write past it is caught
constexpr unsigned char kCanary = 0xC5;
constexpr int kWarp = 32;

std::string dims(const uint3& v) {
  std::ostringstream s;
  s << '(' << v.x << ", " << v.y << ", " << v.z << ')';
  return s.str();
}

std::string hex(uint32_t mask) {
  std::ostringstream s;
  s << "0x" << std::hex << mask;
  return s.str();
}

const char* collective_name(Collective kind) {
  switch (kind) {
    case Collective::kShuffle: return "__shfl*_sync";
    case Collective::kBallot: return "__ballot_sync";
    case Collective::kAny: return "__any_sync";
    case Collective::kAll: return "__all_sync";
    case Collective::kSyncWarp: return "__syncwarp";
    case Collective::kWmma: return "wmma::*_sync";
  }
  return "?";
}

// Lanes of one warp that have met at a collective with the same mask.
struct PendingCollective {
  Collective kind = Collective::kSyncWarp;
  uint32_t mask = 0, arrived = 0;
  uint64_t value[kWarp] = {};
  int source[kWarp] = {};
};

struct WarpState {
  uint32_t present = 0, exited = 0;
  std::vector<PendingCollective> pending;
};

}  // namespace

class BlockRunner {
 public:
  void run(const KernelGrid& grid, uint64_t block_linear);

  void arrive_at_barrier(ThreadState& t);
  uint64_t collective(ThreadState& t, Collective kind, uint32_t mask, uint64_t value, int source);
  uint32_t active_lanes(const ThreadState& t) const;
  void declare_shared(void* p, size_t bytes);

 private:
  static void thread_main(void* arg);
  void yield(ThreadState& t) { Fiber::switch_to(t.fiber, scheduler_); }
  void exited(ThreadState& t);
  std::string who(const ThreadState& t) const;
  void deadlock() const;
  void order_threads(uint64_t round);
  void prepare(const KernelGrid& grid, uint64_t block_linear);

  const KernelGrid* grid_ = nullptr;
  uint64_t block_linear_ = 0;
  BlockState block_;
  std::vector<std::unique_ptr<FiberStack>> stacks_;
  std::vector<ThreadState> threads_;
  std::vector<WarpState> warps_;
  std::vector<int> order_;
  std::vector<char> shared_;
  std::vector<std::pair<void*, size_t>> declared_shared_;
  Fiber scheduler_;
  int alive_ = 0, at_barrier_ = 0, exited_ = 0;
};

std::string BlockRunner::who(const ThreadState& t) const {
  return "thread " + dims(t.thread_idx) + " of block " + dims(block_.block_idx) +
         " (kernel launched at " + grid_->where + ")";
}

void BlockRunner::prepare(const KernelGrid& grid, uint64_t block_linear) {
  grid_ = &grid;
  block_linear_ = block_linear;
  const dim3 g = grid.grid, b = grid.block;
  block_.block_idx = {static_cast<unsigned>(block_linear % g.x),
                      static_cast<unsigned>(block_linear / g.x % g.y),
                      static_cast<unsigned>(block_linear / (uint64_t{g.x} * g.y))};
  block_.block_dim = b;
  block_.grid_dim = g;
  block_.runner = this;

  const int n = static_cast<int>(b.x * b.y * b.z);
  while (static_cast<int>(stacks_.size()) < n)
    stacks_.push_back(std::make_unique<FiberStack>(kStackBytes, static_cast<int>(stacks_.size())));
  threads_.assign(n, ThreadState{});
  warps_.assign((n + kWarp - 1) / kWarp, WarpState{});
  for (int i = 0; i < n; ++i) {
    ThreadState& t = threads_[i];
    t.thread_idx = {i % b.x, i / b.x % b.y, i / (b.x * b.y)};
    t.block = &block_;
    t.linear = i;
    t.fiber.start(*stacks_[i], &BlockRunner::thread_main, &t);
    warps_[i / kWarp].present |= 1u << (i % kWarp);
  }
  alive_ = n;
  at_barrier_ = exited_ = 0;

  // Dynamic shared memory: NaN bytes, then a canary; fresh for every block.
  const size_t bytes = grid.dynamic_shared_bytes;
  shared_.resize(bytes + kCanaryBytes + 128);
  char* aligned = shared_.data() + (128 - reinterpret_cast<uintptr_t>(shared_.data()) % 128) % 128;
  unpoison_for_sanitizer(aligned, bytes + kCanaryBytes);
  std::memset(aligned, 0xFF, bytes);
  std::memset(aligned + bytes, kCanary, kCanaryBytes);
  poison_for_sanitizer(aligned + bytes, kCanaryBytes);
  block_.dynamic_shared = aligned;
  declared_shared_.clear();
}

void BlockRunner::order_threads(uint64_t round) {
  const int n = static_cast<int>(threads_.size());
  if (order_.size() != threads_.size() || settings().order == ThreadOrder::kRandom) {
    order_.resize(n);
    std::iota(order_.begin(), order_.end(), 0);
    if (settings().order == ThreadOrder::kReverse) std::reverse(order_.begin(), order_.end());
  }
  if (settings().order == ThreadOrder::kRandom) {
    std::mt19937_64 rng(settings().seed ^ (block_linear_ * 0x9E3779B97F4A7C15ull) ^ (round << 32));
    std::shuffle(order_.begin(), order_.end(), rng);
  }
}

void BlockRunner::run(const KernelGrid& grid, uint64_t block_linear) {
  prepare(grid, block_linear);
  order_.clear();
  for (uint64_t round = 0; alive_ > 0; ++round) {
    order_threads(round);
    bool ran = false;
    for (int i : order_) {
      ThreadState& t = threads_[i];
      if (t.waiting != Waiting::kReady) continue;
      current_thread = &t;
      Fiber::switch_to(scheduler_, t.fiber);
      ran = true;
    }
    current_thread = nullptr;
    if (alive_ > 0 && at_barrier_ == alive_) {
      for (ThreadState& t : threads_)
        if (t.waiting == Waiting::kBarrier) t.waiting = Waiting::kReady;
      at_barrier_ = 0;
      continue;
    }
    if (alive_ > 0 && !ran) deadlock();
  }
  const size_t bytes = grid.dynamic_shared_bytes;
  char* canary = block_.dynamic_shared + bytes;
  unpoison_for_sanitizer(canary, kCanaryBytes);
  for (size_t i = 0; i < kCanaryBytes; ++i)
    if (static_cast<unsigned char>(canary[i]) != kCanary) {
      violation("a thread of block " + dims(block_.block_idx) + " wrote past the end of its " +
                std::to_string(bytes) + " bytes of dynamic shared memory (kernel launched at " +
                grid.where + ")");
      break;
    }
}

void BlockRunner::thread_main(void* arg) {
  auto& t = *static_cast<ThreadState*>(arg);
  BlockRunner& runner = *t.block->runner;
  Fiber::entered(runner.scheduler_);
  runner.grid_->body();
  runner.exited(t);
  Fiber::finish_to(t.fiber, runner.scheduler_);
}

void BlockRunner::exited(ThreadState& t) {
  t.waiting = Waiting::kExited;
  --alive_;
  ++exited_;
  WarpState& warp = warps_[t.linear / kWarp];
  const uint32_t bit = 1u << (t.linear % kWarp);
  warp.exited |= bit;
  if (at_barrier_ > 0)
    violation(who(t) + " exited while " + std::to_string(at_barrier_) +
              " other threads wait at __syncthreads");
  for (const PendingCollective& c : warp.pending)
    if (c.mask & bit)
      violation(who(t) + " exited while lanes " + hex(c.arrived) + " wait for it in " +
                collective_name(c.kind) + " with mask " + hex(c.mask));
}

void BlockRunner::arrive_at_barrier(ThreadState& t) {
  if (exited_ > 0)
    violation(who(t) + " reached __syncthreads after " + std::to_string(exited_) +
              " threads of its block exited");
  t.waiting = Waiting::kBarrier;
  ++at_barrier_;
  yield(t);
}

uint64_t BlockRunner::collective(ThreadState& t, Collective kind, uint32_t mask, uint64_t value,
                                 int source) {
  WarpState& warp = warps_[t.linear / kWarp];
  const int lane = t.linear % kWarp;
  const uint32_t bit = 1u << lane;
  // Built only for a report: this is the emulator's hottest path.
  const auto call = [&] { return std::string(collective_name(kind)) + " with mask " + hex(mask); };
  if (!(mask & bit)) violation(who(t) + " calls " + call() + ", which does not name its own lane");
  if (mask & ~warp.present)
    violation(who(t) + " calls " + call() + ", which names lanes " + hex(mask & ~warp.present) +
              " that its block does not have");
  if (mask & warp.exited)
    violation(who(t) + " calls " + call() + ", which names exited lanes " +
              hex(mask & warp.exited));

  PendingCollective* group = nullptr;
  for (PendingCollective& c : warp.pending) {
    if (c.mask == mask && !(c.arrived & bit)) {
      group = &c;
      break;
    }
    if ((c.mask & bit) && c.mask != mask)
      violation(who(t) + " calls " + call() + " while lanes " + hex(c.arrived) + " wait in " +
                collective_name(c.kind) + " with mask " + hex(c.mask) + ": the lanes disagree");
  }
  if (!group) {
    warp.pending.push_back(PendingCollective{});
    group = &warp.pending.back();
    group->kind = kind;
    group->mask = mask;
  } else if (group->kind != kind) {
    violation(who(t) + " calls " + call() + " while the other lanes of the mask wait in " +
              collective_name(group->kind));
  }
  group->arrived |= bit;
  group->value[lane] = value;
  group->source[lane] = source;
  t.collective = kind;
  t.collective_mask = mask;

  if (group->arrived != (mask & ~warp.exited)) {
    t.waiting = Waiting::kCollective;
    yield(t);
    return t.collective_result;
  }
  // The last lane to arrive hands every lane its result.
  uint32_t ballot = 0;
  for (int l = 0; l < kWarp; ++l)
    if ((group->arrived >> l & 1u) && group->value[l] != 0) ballot |= 1u << l;
  const int base = t.linear - lane;
  for (int l = 0; l < kWarp; ++l) {
    if (!(group->arrived >> l & 1u)) continue;
    uint64_t result = 0;
    switch (kind) {
      case Collective::kShuffle:
      case Collective::kWmma: {
        const int from = group->source[l];
        if (!(group->arrived >> from & 1u)) {
          violation(who(threads_[base + l]) + " reads lane " + std::to_string(from) + " in " +
                    call() + ", which does not take part");
          result = group->value[l];
        } else {
          result = group->value[from];
        }
        break;
      }
      case Collective::kBallot: result = ballot; break;
      case Collective::kAny: result = ballot != 0; break;
      case Collective::kAll: result = ballot == group->arrived; break;
      case Collective::kSyncWarp: break;
    }
    ThreadState& other = threads_[base + l];
    other.collective_result = result;
    if (l != lane) other.waiting = Waiting::kReady;
  }
  warp.pending.erase(warp.pending.begin() + (group - warp.pending.data()));
  return t.collective_result;
}

uint32_t BlockRunner::active_lanes(const ThreadState& t) const {
  const WarpState& warp = warps_[t.linear / kWarp];
  return warp.present & ~warp.exited;
}

void BlockRunner::declare_shared(void* p, size_t bytes) {
  for (const auto& d : declared_shared_)
    if (d.first == p) return;
  std::memset(p, 0xFF, bytes);
  declared_shared_.emplace_back(p, bytes);
}

void BlockRunner::deadlock() const {
  std::string report = "deadlock in block " + dims(block_.block_idx) + " (kernel launched at " +
                       grid_->where + "): " + std::to_string(alive_) + " threads wait forever";
  int listed = 0;
  for (const ThreadState& t : threads_) {
    if (t.waiting == Waiting::kReady || t.waiting == Waiting::kExited) continue;
    if (listed++ == 16) {
      report += "; ...";
      break;
    }
    report += "; thread " + dims(t.thread_idx) + " at " +
              (t.waiting == Waiting::kBarrier
                   ? std::string("__syncthreads")
                   : std::string(collective_name(t.collective)) + " mask " + hex(t.collective_mask));
  }
  fatal(report);
}

void sync_threads() { current_thread->block->runner->arrive_at_barrier(*current_thread); }

uint64_t warp_collective(Collective kind, uint32_t mask, uint64_t value, int source) {
  return current_thread->block->runner->collective(*current_thread, kind, mask, value, source);
}

uint32_t active_lanes() { return current_thread->block->runner->active_lanes(*current_thread); }

void declare_shared(void* p, size_t bytes) { current_thread->block->runner->declare_shared(p, bytes); }

namespace {

// OS threads that run blocks; the launching thread takes part too.
class BlockPool {
 public:
  static BlockPool& get() {
    static BlockPool pool(settings().threads - 1);
    return pool;
  }

  void run(const KernelGrid& grid) {
    const uint64_t blocks = uint64_t{grid.grid.x} * grid.grid.y * grid.grid.z;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      grid_ = &grid;
      blocks_ = blocks;
      next_.store(0);
      busy_ = static_cast<int>(workers_.size());
      ++generation_;
    }
    wake_.notify_all();
    work();
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [&] { return busy_ == 0; });
    grid_ = nullptr;
  }

 private:
  explicit BlockPool(int workers) {
    for (int i = 0; i < workers; ++i) workers_.emplace_back([this] { loop(); });
  }
  ~BlockPool() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    for (std::thread& t : workers_) t.join();
  }

  void work() {
    thread_local BlockRunner runner;
    for (uint64_t b; (b = next_.fetch_add(1)) < blocks_;) runner.run(*grid_, b);
  }

  void loop() {
    uint64_t seen = 0;
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
        if (stop_) return;
        seen = generation_;
      }
      work();
      {
        std::lock_guard<std::mutex> lock(mutex_);
        --busy_;
      }
      done_.notify_all();
    }
  }

  std::mutex mutex_;
  std::condition_variable wake_, done_;
  std::vector<std::thread> workers_;
  const KernelGrid* grid_ = nullptr;
  uint64_t blocks_ = 0, generation_ = 0;
  std::atomic<uint64_t> next_{0};
  int busy_ = 0;
  bool stop_ = false;
};

}  // namespace

void run_grid(const KernelGrid& grid) { BlockPool::get().run(grid); }

}  // namespace cuda_emulator
