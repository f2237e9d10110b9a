#include "tests/cuda_emulator/fiber.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

// CUDA_EMULATOR_ASAN: set by CMake in a sanitizer build (CMakeLists.txt beside this).
#ifdef CUDA_EMULATOR_ASAN
#include <sanitizer/common_interface_defs.h>
#endif

#if !defined(__x86_64__)
#error "the CUDA emulator's context switch is written for x86-64"
#endif

// switch_context(void** save_sp, void* load_sp): pushes the callee-saved registers and the
// floating-point control words, stores the stack pointer, loads the other one, pops its
// registers and returns into the other context. fiber_trampoline is where a new fiber's
// first return lands: entry (r13) is called with arg (r12) on an aligned stack.
asm(R"(
  .text
  .p2align 4
  .type cuda_emulator_switch_context,@function
cuda_emulator_switch_context:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  retq
  .size cuda_emulator_switch_context, .-cuda_emulator_switch_context

  .p2align 4
  .type cuda_emulator_fiber_trampoline,@function
cuda_emulator_fiber_trampoline:
  movq %r12, %rdi
  callq *%r13
  ud2
  .size cuda_emulator_fiber_trampoline, .-cuda_emulator_fiber_trampoline
)");

extern "C" void cuda_emulator_switch_context(void** save_sp, void* load_sp);
extern "C" void cuda_emulator_fiber_trampoline();

namespace cuda_emulator {
namespace {

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "cuda emulator: %s: %s\n", what, std::strerror(errno));
  std::abort();
}

}  // namespace

FiberStack::FiberStack(size_t bytes, int color) {
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  color_bytes_ = size_t(color % 64) * 64;
  guard_ = page;
  bytes_ = (bytes + page - 1) / page * page;
  void* p = mmap(nullptr, guard_ + bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                 -1, 0);
  if (p == MAP_FAILED) die("cannot map a fiber stack");
  base_ = static_cast<char*>(p);
  if (mprotect(base_, guard_, PROT_NONE) != 0) die("cannot protect a fiber stack's guard page");
}

FiberStack::~FiberStack() {
  if (base_) munmap(base_, guard_ + bytes_);
}

void Fiber::start(const FiberStack& stack, Entry entry, void* arg) {
  // Frame read by the first switch into this fiber, from the lowest address: the control
  // words, r15, r14, r13 (entry), r12 (arg), rbx, rbp, and the return address (trampoline).
  // After that return the stack pointer is 16-byte aligned, as a call expects.
  auto top = reinterpret_cast<uintptr_t>(stack.top()) & ~uintptr_t{15};
  auto* frame = reinterpret_cast<uint64_t*>(top - 16 - 8 * 8);
  uint32_t mxcsr = 0;
  uint16_t fpu_cw = 0;
  asm volatile("stmxcsr %0" : "=m"(mxcsr));
  asm volatile("fnstcw %0" : "=m"(fpu_cw));
  frame[0] = uint64_t{mxcsr} | (uint64_t{fpu_cw} << 32);
  frame[1] = 0;                                     // r15
  frame[2] = 0;                                     // r14
  frame[3] = reinterpret_cast<uint64_t>(entry);     // r13
  frame[4] = reinterpret_cast<uint64_t>(arg);       // r12
  frame[5] = 0;                                     // rbx
  frame[6] = 0;                                     // rbp
  frame[7] = reinterpret_cast<uint64_t>(&cuda_emulator_fiber_trampoline);
  sp_ = frame;
  stack_bottom_ = stack.bottom();
  stack_size_ = stack.size();
}

#ifdef CUDA_EMULATOR_ASAN
// AddressSanitizer's use-after-return detection gives every fiber a fake stack of its own,
// mapped when the fiber first calls a function and unmapped when it ends: five system
// calls per CUDA thread, which made the emulated tests 150 times slower under ASan. A
// kernel's locals never outlive it, so the emulator turns the detection off.
extern "C" int __asan_option_detect_stack_use_after_return;
namespace {
const bool use_after_return_off = (__asan_option_detect_stack_use_after_return = 0, true);
}  // namespace

void Fiber::switch_to(Fiber& from, Fiber& to) {
  void* fake_stack = nullptr;
  __sanitizer_start_switch_fiber(&fake_stack, to.stack_bottom_, to.stack_size_);
  cuda_emulator_switch_context(&from.sp_, to.sp_);
  __sanitizer_finish_switch_fiber(fake_stack, nullptr, nullptr);
}
void Fiber::finish_to(Fiber& from, Fiber& to) {
  __sanitizer_start_switch_fiber(nullptr, to.stack_bottom_, to.stack_size_);
  cuda_emulator_switch_context(&from.sp_, to.sp_);
  __builtin_unreachable();
}
void Fiber::entered(Fiber& came_from) {
  __sanitizer_finish_switch_fiber(nullptr, &came_from.stack_bottom_, &came_from.stack_size_);
}
#else
void Fiber::switch_to(Fiber& from, Fiber& to) { cuda_emulator_switch_context(&from.sp_, to.sp_); }
void Fiber::finish_to(Fiber& from, Fiber& to) {
  cuda_emulator_switch_context(&from.sp_, to.sp_);
  __builtin_unreachable();
}
void Fiber::entered(Fiber&) {}
#endif

}  // namespace cuda_emulator
