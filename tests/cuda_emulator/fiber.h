// A CUDA thread of the emulator is a fiber: its own stack, entered and left only at the
// points the scheduler chooses (start, __syncthreads, warp collectives, exit). The switch is
// a few instructions of hand-written x86-64 (callee-saved registers, MXCSR and the x87
// control word); ucontext's swapcontext makes a system call per switch, and a 256-thread
// block of the attention kernel switches millions of times.
#pragma once
#include <cstddef>

namespace cuda_emulator {

// A stack with a guard page below it (an overflow faults instead of corrupting a neighbour).
// Stacks of the same size start `color` cache lines below their top, so that the first
// frames of a block's many fibers do not all fall into the same cache sets.
class FiberStack {
 public:
  FiberStack(size_t bytes, int color);
  FiberStack(const FiberStack&) = delete;
  FiberStack& operator=(const FiberStack&) = delete;
  ~FiberStack();
  char* bottom() const { return base_ + guard_; }
  size_t size() const { return bytes_; }
  char* top() const { return base_ + guard_ + bytes_ - color_bytes_; }

 private:
  char* base_ = nullptr;
  size_t guard_ = 0, bytes_ = 0, color_bytes_ = 0;
};

// One execution context: either a fiber made by start() or the OS thread's own (the
// scheduler's), whose context is saved by the first switch away from it.
class Fiber {
 public:
  using Entry = void (*)(void* arg);
  // Prepares the fiber to run entry(arg) on `stack` at its next switch_to. `entry` must
  // never return: a finished fiber switches away for good (finish_to).
  void start(const FiberStack& stack, Entry entry, void* arg);
  // Saves the current context into `from` and resumes `to`.
  static void switch_to(Fiber& from, Fiber& to);
  // As switch_to, for a fiber that will never be resumed again.
  static void finish_to(Fiber& from, Fiber& to);
  // First statement of a fiber's entry function: `came_from` is the context that started
  // it, whose stack bounds AddressSanitizer needs for the switches back to it.
  static void entered(Fiber& came_from);

 private:
  void* sp_ = nullptr;
  const void* stack_bottom_ = nullptr;  // for AddressSanitizer; null for an OS thread's
  size_t stack_size_ = 0;
};

}  // namespace cuda_emulator
