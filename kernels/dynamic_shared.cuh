// Dynamic shared memory above 48 KB must be allowed per kernel and device
// (cudaFuncAttributeMaxDynamicSharedMemorySize). allow_dynamic_shared asks once per kernel,
// device and size, so a forward pass does not repeat the call on every launch. Host code.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <map>
#include <mutex>
#include <utility>

#include "kernels/cuda_check.h"

namespace musiq::cuda {

// Allows `kernel` `bytes` of dynamic shared memory on the current device, unless a call
// before already allowed as much there. (Nothing here resets a device, which would undo it.)
template <typename Kernel>
void allow_dynamic_shared(Kernel* kernel, size_t bytes) {
  int device = 0;
  CUDA_CHECK(cudaGetDevice(&device));
  static std::mutex mutex;
  static std::map<std::pair<int, const void*>, size_t> allowed;
  const std::lock_guard<std::mutex> lock(mutex);
  size_t& most = allowed[{device, reinterpret_cast<const void*>(kernel)}];
  if (most >= bytes) return;
  CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                  static_cast<int>(bytes)));
  most = bytes;
}

}  // namespace musiq::cuda
