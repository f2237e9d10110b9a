// Force-included before every kernel source the emulator compiles (as C++, after
// rewrite_cuda_source.cmake): CUDA's built-in variables and device functions as ordinary
// C++ over the running fiber's state. Types and host declarations come from the toolkit's
// own cuda_runtime.h. Arithmetic intrinsics are the plain IEEE operations (the sources are
// compiled without floating-point contraction), so __fmul_rn and friends round as on a GPU;
// the approximate ones (__expf) are the exact functions here.
#pragma once
#include <cuda_runtime.h>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "tests/cuda_emulator/kernel_launch.h"
#include "tests/cuda_emulator/thread_state.h"

#define __launch_bounds__(...)

#define threadIdx (::cuda_emulator::current_thread->thread_idx)
#define blockIdx (::cuda_emulator::current_thread->block->block_idx)
#define blockDim (::cuda_emulator::current_thread->block->block_dim)
#define gridDim (::cuda_emulator::current_thread->block->grid_dim)
inline constexpr int warpSize = 32;

namespace cuda_emulator {

template <class T>
T* dynamic_shared() {
  return reinterpret_cast<T*>(current_thread->block->dynamic_shared);
}

template <class T>
uint64_t to_bits(T v) {
  static_assert(sizeof(T) <= sizeof(uint64_t) && std::is_trivially_copyable_v<T>,
                "warp shuffles move at most 8 bytes");
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  return bits;
}

template <class T>
T from_bits(uint64_t bits) {
  T v;
  std::memcpy(&v, &bits, sizeof(T));
  return v;
}

inline int lane_id() { return current_thread->linear % 32; }

template <class T>
T shuffle(unsigned mask, T var, int source) {
  return from_bits<T>(warp_collective(Collective::kShuffle, mask, to_bits(var), source));
}

}  // namespace cuda_emulator

// The C++ overloads that cuda_runtime.h declares for nvcc only: kernels by function pointer.
template <class T>
cudaError_t cudaFuncGetAttributes(cudaFuncAttributes* attr, T* entry) {
  return ::cudaFuncGetAttributes(attr, reinterpret_cast<const void*>(entry));
}
template <class T>
cudaError_t cudaFuncSetAttribute(T* entry, cudaFuncAttribute attr, int value) {
  return ::cudaFuncSetAttribute(reinterpret_cast<const void*>(entry), attr, value);
}

inline void __syncthreads() { ::cuda_emulator::sync_threads(); }
inline void __syncwarp(unsigned mask = 0xFFFFFFFFu) {
  ::cuda_emulator::warp_collective(::cuda_emulator::Collective::kSyncWarp, mask, 0, 0);
}
inline unsigned __activemask() { return ::cuda_emulator::active_lanes(); }
inline unsigned __ballot_sync(unsigned mask, int predicate) {
  return static_cast<unsigned>(::cuda_emulator::warp_collective(
      ::cuda_emulator::Collective::kBallot, mask, predicate != 0, 0));
}
inline int __any_sync(unsigned mask, int predicate) {
  return static_cast<int>(
      ::cuda_emulator::warp_collective(::cuda_emulator::Collective::kAny, mask, predicate != 0, 0));
}
inline int __all_sync(unsigned mask, int predicate) {
  return static_cast<int>(
      ::cuda_emulator::warp_collective(::cuda_emulator::Collective::kAll, mask, predicate != 0, 0));
}

// Shuffles within segments of `width` lanes; a source outside the caller's segment (up,
// down, xor) gives the caller's own value, as on a GPU.
template <class T>
T __shfl_sync(unsigned mask, T var, int source_lane, int width = 32) {
  const int lane = ::cuda_emulator::lane_id(), base = lane / width * width;
  return ::cuda_emulator::shuffle(mask, var, base + (source_lane % width + width) % width);
}
template <class T>
T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = 32) {
  const int lane = ::cuda_emulator::lane_id(), base = lane / width * width;
  const int source = lane - static_cast<int>(delta);
  return ::cuda_emulator::shuffle(mask, var, source < base ? lane : source);
}
template <class T>
T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = 32) {
  const int lane = ::cuda_emulator::lane_id(), base = lane / width * width;
  const int source = lane + static_cast<int>(delta);
  return ::cuda_emulator::shuffle(mask, var, source >= base + width ? lane : source);
}
template <class T>
T __shfl_xor_sync(unsigned mask, T var, int lane_mask, int width = 32) {
  const int lane = ::cuda_emulator::lane_id(), base = lane / width * width;
  const int source = lane ^ lane_mask;
  return ::cuda_emulator::shuffle(mask, var, source >= base + width ? lane : source);
}

// CUDA's device overloads of min and max, for the types kernels use.
#define CUDA_EMULATOR_MIN_MAX(T)                          \
  inline T min(T a, T b) { return b < a ? b : a; }        \
  inline T max(T a, T b) { return a < b ? b : a; }
CUDA_EMULATOR_MIN_MAX(int)
CUDA_EMULATOR_MIN_MAX(unsigned)
CUDA_EMULATOR_MIN_MAX(long)
CUDA_EMULATOR_MIN_MAX(unsigned long)
CUDA_EMULATOR_MIN_MAX(long long)
CUDA_EMULATOR_MIN_MAX(unsigned long long)
#undef CUDA_EMULATOR_MIN_MAX
inline float min(float a, float b) { return std::fmin(a, b); }
inline float max(float a, float b) { return std::fmax(a, b); }
inline double min(double a, double b) { return std::fmin(a, b); }
inline double max(double a, double b) { return std::fmax(a, b); }

inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __frcp_rn(float a) { return 1.0f / a; }
inline float __fsqrt_rn(float a) { return std::sqrt(a); }
inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline float __expf(float a) { return std::exp(a); }
inline float __logf(float a) { return std::log(a); }
inline float rsqrtf(float a) { return 1.0f / std::sqrt(a); }
inline float __saturatef(float a) { return a < 0.0f ? 0.0f : (a > 1.0f ? 1.0f : a); }
inline float __int_as_float(int v) { return ::cuda_emulator::from_bits<float>(static_cast<uint32_t>(v)); }
inline float __uint_as_float(unsigned v) { return ::cuda_emulator::from_bits<float>(v); }
inline int __float_as_int(float v) { return static_cast<int>(::cuda_emulator::to_bits(v)); }
inline unsigned __float_as_uint(float v) { return static_cast<unsigned>(::cuda_emulator::to_bits(v)); }
template <class T>
T __ldg(const T* p) {
  return *p;
}

inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline void __threadfence_block() { std::atomic_thread_fence(std::memory_order_seq_cst); }
template <class T>
T atomicAdd(T* address, T value) {
  return std::atomic_ref<T>(*address).fetch_add(value);
}
template <class T>
T atomicExch(T* address, T value) {
  return std::atomic_ref<T>(*address).exchange(value);
}
template <class T>
T atomicCAS(T* address, T expected, T desired) {
  std::atomic_ref<T>(*address).compare_exchange_strong(expected, desired);
  return expected;
}
template <class T>
T atomicMax(T* address, T value) {
  std::atomic_ref<T> a(*address);
  T old = a.load();
  while (old < value && !a.compare_exchange_weak(old, value)) {}
  return old;
}
template <class T>
T atomicMin(T* address, T value) {
  std::atomic_ref<T> a(*address);
  T old = a.load();
  while (value < old && !a.compare_exchange_weak(old, value)) {}
  return old;
}
