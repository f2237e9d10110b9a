// Device memory for the emulator's own tests; leaks on a failed assertion, which ends the
// process anyway.
#pragma once
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <vector>

namespace cuda_emulator_test {

template <class T>
T* device_array(size_t n) {
  void* p = nullptr;
  EXPECT_EQ(cudaMalloc(&p, n * sizeof(T)), cudaSuccess);
  return static_cast<T*>(p);
}

template <class T>
T* device_copy(const std::vector<T>& host) {
  T* p = device_array<T>(host.size());
  EXPECT_EQ(cudaMemcpy(p, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice),
            cudaSuccess);
  return p;
}

template <class T>
std::vector<T> download(const T* p, size_t n) {
  std::vector<T> host(n);
  EXPECT_EQ(cudaMemcpy(host.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost), cudaSuccess);
  return host;
}

}  // namespace cuda_emulator_test
