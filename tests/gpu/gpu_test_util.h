// The GPU side of the test utilities: skip without a device, device buffers (the engine's
// DeviceArray) with a guard band that catches out-of-bounds writes, and the GEMM context
// and tolerance of the tests of the GEMM-backed ops (linear, conv2d). Random data,
// tolerance checks and test names are tests/test_util.h's, shared with the CPU tests.
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
#include <vector>

#include "engine/device.h"
#include "kernels/cuda_check.h"
#include "kernels/device_array.h"
#include "kernels/ops.cuh"
#include "tests/test_util.h"

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

// Device memory owned by the test: a DeviceArray of `count` elements plus a guard band of
// kGuard elements after them, filled with 0xA5 bytes; guard_intact() says whether a kernel
// wrote past the end. Move-only. Uploads and the guard fill are complete on the device when
// they return, and downloads wait for all device work first: the tests' kernels run on
// non-blocking streams, which are not ordered with cudaMemcpy/cudaMemset on the legacy
// default stream.
template <typename T>
class DeviceBuffer {
 public:
  static constexpr size_t kGuard = 64;

  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t count) {
    memory_.allocate(count + kGuard, "a test buffer");
    CUDA_CHECK(cudaMemset(get() + count, 0xA5, kGuard * sizeof(T)));
    CUDA_CHECK(cudaDeviceSynchronize());
  }
  explicit DeviceBuffer(const std::vector<T>& host) : DeviceBuffer(host.size()) {
    upload(host);
  }

  T* get() const { return memory_.get(); }
  size_t size() const { return memory_.size() == 0 ? 0 : memory_.size() - kGuard; }

  void upload(const std::vector<T>& host) {
    if (host.size() != size()) throw Error("DeviceBuffer::upload: size mismatch");
    if (size())
      CUDA_CHECK(cudaMemcpy(get(), host.data(), size() * sizeof(T), cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaDeviceSynchronize());  // a pageable copy may still be in flight
  }
  std::vector<T> download() const {
    CUDA_CHECK(cudaDeviceSynchronize());
    std::vector<T> host(size());
    if (size())
      CUDA_CHECK(cudaMemcpy(host.data(), get(), size() * sizeof(T), cudaMemcpyDeviceToHost));
    return host;
  }
  bool guard_intact() const {
    std::vector<unsigned char> guard(kGuard * sizeof(T));
    CUDA_CHECK(cudaDeviceSynchronize());
    CUDA_CHECK(cudaMemcpy(guard.data(), get() + size(), guard.size(), cudaMemcpyDeviceToHost));
    for (unsigned char b : guard)
      if (b != 0xA5) return false;
    return true;
  }

 private:
  cuda::DeviceArray<T> memory_;
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

// A GemmContext with a workspace of its own, as GpuModel gives it one.
class Gemm {
 public:
  Gemm() : workspace_(cuda::kBlasWorkspaceBytes), context_(workspace_.get(), workspace_.size()) {}
  cuda::GemmContext* get() { return &context_; }

 private:
  DeviceBuffer<unsigned char> workspace_;
  cuda::GemmContext context_;
};

// A GEMM-backed op against its CPU twin at the same precision: (1e-5 + 1e-7 * k) abs +
// 1e-5 rel. Both sides sum the same products in float32 in different orders (OpenBLAS or
// our GEMM against cuBLASLt) and add the residual at another point (an ulp of it); for
// inputs in [-1, 1] each rounding error is ~6e-8 of partial sums that grow like sqrt(k), so
// the expected difference is ~1e-7 * k at worst for the k here (31 .. 16384), while an
// indexing or epilogue bug gives errors of order 1.
inline double gemm_abs_tol(int64_t k) { return 1e-5 + 1e-7 * double(k); }
inline constexpr double kGemmRelTol = 1e-5;

}  // namespace musiq::gpu_test

// First statement of every GPU test: skips with the reason when no device can be used.
#define MUSIQ_SKIP_WITHOUT_GPU()                                       \
  do {                                                                 \
    std::string musiq_skip_reason_;                                    \
    if (!::musiq::gpu_test::gpu_available(&musiq_skip_reason_))        \
      GTEST_SKIP() << musiq_skip_reason_;                              \
  } while (0)
