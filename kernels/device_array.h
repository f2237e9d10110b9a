// Device memory owned by the host code (GpuModel, the GPU benchmarks, the GPU tests'
// DeviceBuffer): RAII, move-only, and an out-of-memory error that says how much was asked
// for and how much is free.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "base/error.h"
#include "kernels/cuda_check.h"

namespace musiq::cuda {

inline std::string mib(double bytes) {
  return std::to_string(static_cast<int64_t>(bytes / (1024.0 * 1024.0) + 0.5)) + " MiB";
}

// Device memory, freed on destruction. Move-only.
template <typename T>
class DeviceArray {
 public:
  DeviceArray() = default;
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  DeviceArray(DeviceArray&& other) noexcept { swap(other); }
  DeviceArray& operator=(DeviceArray&& other) noexcept {
    swap(other);
    return *this;
  }
  ~DeviceArray() { reset(); }

  // Frees, then allocates `count` elements; out of memory -> musiq::Error naming `what`.
  void allocate(size_t count, const char* what) {
    reset();
    if (count == 0) return;
    void* p = nullptr;
    const cudaError_t status = cudaMalloc(&p, count * sizeof(T));
    if (status != cudaSuccess) {
      cudaGetLastError();  // clear it
      size_t free_bytes = 0, total_bytes = 0;
      cudaMemGetInfo(&free_bytes, &total_bytes);
      throw Error(std::string("GPU: cannot allocate ") + mib(double(count) * sizeof(T)) +
                  " for " + what + " (" + cudaGetErrorString(status) + "; " +
                  mib(double(free_bytes)) + " free of " + mib(double(total_bytes)) + ")");
    }
    data_ = static_cast<T*>(p);
    count_ = count;
  }
  // allocate(host.size()), then copies `host` in on `stream`, so that work queued there
  // after it sees the data (a plain cudaMemcpy runs on the legacy default stream, which
  // streams created cudaStreamNonBlocking do not wait for). `host` may be freed on return:
  // a copy from pageable memory is staged before cudaMemcpyAsync returns.
  void upload(const std::vector<T>& host, const char* what, cudaStream_t stream) {
    allocate(host.size(), what);
    if (!host.empty())
      CUDA_CHECK(cudaMemcpyAsync(data_, host.data(), host.size() * sizeof(T),
                                 cudaMemcpyHostToDevice, stream));
  }
  void reset() {
    if (data_) cudaFree(data_);  // never throws
    data_ = nullptr;
    count_ = 0;
  }
  T* get() const { return data_; }
  size_t size() const { return count_; }

 private:
  void swap(DeviceArray& other) noexcept {
    std::swap(data_, other.data_);
    std::swap(count_, other.count_);
  }
  T* data_ = nullptr;
  size_t count_ = 0;
};

}  // namespace musiq::cuda
