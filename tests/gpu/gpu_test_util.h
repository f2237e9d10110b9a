// Shared helpers for the GPU tests: skip without a device, device buffers (RAII) with a
// guard band that catches out-of-bounds writes, seeded random data, and the llm.c-style
// check |got - want| <= abs_tol + rel_tol * |want| that flags non-finite values and prints
// the first mismatches. Header-only, so the GPU test binary needs no other test sources.
#pragma once
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <random>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "engine/device.h"
#include "kernels/cuda_check.h"

namespace musiq::gpu_test {

// True when this binary can run on a CUDA device (probe_gpu: a device, a recent enough
// driver, and code in this build for the device); otherwise `reason` says why.
inline bool gpu_available(std::string* reason) {
  static const GpuProbe probe = probe_gpu();
  if (!probe.usable) *reason = probe.problem;
  return probe.usable;
}

// Opt-in tests whose buffers pass 2^31 elements (tens of GB of host and device memory).
inline bool large_tests_enabled() {
  const char* v = std::getenv("MUSIQ_GPU_LARGE_TESTS");
  return v != nullptr && std::strcmp(v, "1") == 0;
}

// Device memory owned by the test. `count` elements plus a guard band of kGuard elements
// after them, filled with 0xA5 bytes; guard_intact() says whether a kernel wrote past the
// end. Move-only. Uploads and the guard fill are complete on the device when they return,
// and downloads wait for all device work first: the tests' kernels run on non-blocking
// streams, which are not ordered with cudaMemcpy/cudaMemset on the legacy default stream.
template <typename T>
class DeviceBuffer {
 public:
  static constexpr size_t kGuard = 64;

  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t count) : count_(count) {
    CUDA_CHECK(cudaMalloc(&data_, (count + kGuard) * sizeof(T)));
    CUDA_CHECK(cudaMemset(data_ + count, 0xA5, kGuard * sizeof(T)));
    CUDA_CHECK(cudaDeviceSynchronize());
  }
  explicit DeviceBuffer(const std::vector<T>& host) : DeviceBuffer(host.size()) {
    upload(host);
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& other) noexcept { swap(other); }
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept {
    swap(other);
    return *this;
  }
  ~DeviceBuffer() {
    if (data_) cudaFree(data_);  // never throw from a destructor
  }

  T* get() const { return data_; }
  size_t size() const { return count_; }

  void upload(const std::vector<T>& host) {
    if (host.size() != count_) throw Error("DeviceBuffer::upload: size mismatch");
    if (count_) CUDA_CHECK(cudaMemcpy(data_, host.data(), count_ * sizeof(T), cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaDeviceSynchronize());  // a pageable copy may still be in flight
  }
  std::vector<T> download() const {
    CUDA_CHECK(cudaDeviceSynchronize());
    std::vector<T> host(count_);
    if (count_) CUDA_CHECK(cudaMemcpy(host.data(), data_, count_ * sizeof(T), cudaMemcpyDeviceToHost));
    return host;
  }
  bool guard_intact() const {
    std::vector<unsigned char> guard(kGuard * sizeof(T));
    CUDA_CHECK(cudaDeviceSynchronize());
    CUDA_CHECK(cudaMemcpy(guard.data(), data_ + count_, guard.size(), cudaMemcpyDeviceToHost));
    for (unsigned char b : guard)
      if (b != 0xA5) return false;
    return true;
  }

 private:
  void swap(DeviceBuffer& other) noexcept {
    std::swap(data_, other.data_);
    std::swap(count_, other.count_);
  }
  T* data_ = nullptr;
  size_t count_ = 0;
};

// A stream per test (the kernels must honour the stream they are given). RAII.
class Stream {
 public:
  Stream() { CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking)); }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  ~Stream() { cudaStreamDestroy(stream_); }
  cudaStream_t get() const { return stream_; }
  void sync() const { CUDA_CHECK(cudaStreamSynchronize(stream_)); }

 private:
  cudaStream_t stream_ = nullptr;
};

// Concatenates its arguments with operator<<: test-case names such as name("n", 33, "_c", 64)
// (not "n" + std::to_string(33), which trips GCC 12's -Wrestrict false positive).
template <typename... Args>
std::string name(const Args&... args) {
  std::ostringstream out;
  (out << ... << args);
  return out.str();
}

// Uniform floats in [lo, hi) from a fixed seed (failures must reproduce).
inline std::vector<float> random_floats(size_t n, uint32_t seed, float lo = -1.0f,
                                        float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// Uniform integers in [lo, hi] from a fixed seed.
template <typename T>
std::vector<T> random_ints(size_t n, uint32_t seed, T lo, T hi) {
  static_assert(std::is_integral_v<T>);
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int64_t> dist(lo, hi);
  std::vector<T> v(n);
  for (T& x : v) x = static_cast<T>(dist(rng));
  return v;
}

// Every |got[i] - want[i]| <= bound(i, |want[i]|). A non-finite value on either side must
// be matched by the same non-finite value on the other (NaN == NaN here). Reports the count,
// the worst error and the first few mismatches; `bound_text` describes the bound.
template <typename Bound>
::testing::AssertionResult all_within(const float* got, const float* want, size_t n,
                                      const Bound& bound, const std::string& bound_text) {
  constexpr int kShow = 8;
  std::ostringstream first;
  first.precision(9);
  size_t bad = 0, non_finite = 0;
  double worst = 0, worst_want = 0;
  size_t worst_at = 0;
  for (size_t i = 0; i < n; ++i) {
    const double g = got[i], w = want[i];
    bool ok;
    if (!std::isfinite(g) || !std::isfinite(w)) {
      ok = (std::isnan(g) && std::isnan(w)) || g == w;
      if (!ok) ++non_finite;
    } else {
      const double err = std::abs(g - w);
      ok = err <= bound(i, std::abs(w));
      if (err > worst) {
        worst = err;
        worst_want = w;
        worst_at = i;
      }
    }
    if (!ok && bad++ < kShow)
      first << "\n  [" << i << "] got " << got[i] << " want " << want[i] << " (diff "
            << (g - w) << ")";
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  std::ostringstream msg;
  msg.precision(9);
  msg << bad << " of " << n << " values outside " << bound_text << " (" << non_finite
      << " non-finite mismatches; max abs err " << worst << " at [" << worst_at
      << "] where want " << worst_want << "); first:" << first.str();
  return ::testing::AssertionFailure() << msg.str();
}

// Every |got - want| <= abs_tol + rel_tol * |want|.
inline ::testing::AssertionResult all_close(const float* got, const float* want, size_t n,
                                            double abs_tol, double rel_tol) {
  std::ostringstream text;
  text << abs_tol << " abs + " << rel_tol << " rel";
  return all_within(
      got, want, n, [&](size_t, double w) { return abs_tol + rel_tol * w; }, text.str());
}

inline ::testing::AssertionResult all_close(const std::vector<float>& got,
                                            const std::vector<float>& want, double abs_tol,
                                            double rel_tol) {
  if (got.size() != want.size())
    return ::testing::AssertionFailure() << "size " << got.size() << " != " << want.size();
  return all_close(got.data(), want.data(), got.size(), abs_tol, rel_tol);
}

// Bit-for-bit equality (for ops whose GPU arithmetic is the CPU's, operation by operation).
inline ::testing::AssertionResult all_equal(const std::vector<float>& got,
                                            const std::vector<float>& want) {
  return all_close(got, want, 0.0, 0.0);
}

}  // namespace musiq::gpu_test

// First statement of every GPU test: skips with the reason when no device can be used.
#define MUSIQ_SKIP_WITHOUT_GPU()                                       \
  do {                                                                 \
    std::string musiq_skip_reason_;                                    \
    if (!::musiq::gpu_test::gpu_available(&musiq_skip_reason_))        \
      GTEST_SKIP() << musiq_skip_reason_;                              \
  } while (0)
