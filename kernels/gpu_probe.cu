// CUDA builds: find a usable GPU, and say precisely why when there is none.
#include <cuda_runtime.h>

#include "engine/device.h"

namespace musiq {

GpuProbe probe_gpu() {
  GpuProbe probe;
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status == cudaErrorInsufficientDriver) {
    probe.problem = "no NVIDIA driver, or one too old for this CUDA build";
    return probe;
  }
  if (status != cudaSuccess || count == 0) {
    probe.problem = status == cudaSuccess ? "no CUDA device found"
                                          : std::string("no usable CUDA device (") +
                                                cudaGetErrorString(status) + ")";
    return probe;
  }
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess) {
    probe.problem = "cannot query CUDA device 0";
    return probe;
  }
  probe.usable = true;
  probe.name = prop.name;
  return probe;
}

}  // namespace musiq
