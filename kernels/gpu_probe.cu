// CUDA builds: find a usable GPU, and say precisely why when there is none.
#include <cuda_runtime.h>

#include <string>

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
  // This build carries sm_90 code and compute_80 PTX (CMAKE_CUDA_ARCHITECTURES): older
  // GPUs cannot run its kernels.
  if (prop.major < 8) {
    probe.problem = std::string("GPU ") + prop.name + " has compute capability " +
                    std::to_string(prop.major) + "." + std::to_string(prop.minor) +
                    "; this build needs 8.0 or newer";
    return probe;
  }
  int driver = 0, runtime = 0;
  if (cudaDriverGetVersion(&driver) == cudaSuccess &&
      cudaRuntimeGetVersion(&runtime) == cudaSuccess && driver / 1000 < runtime / 1000) {
    // Same major version works (minor-version compatibility); an older major does not.
    probe.problem = "the NVIDIA driver supports CUDA " + std::to_string(driver / 1000) + "." +
                    std::to_string(driver % 1000 / 10) + ", older than this build's CUDA " +
                    std::to_string(runtime / 1000) + "." + std::to_string(runtime % 1000 / 10) +
                    ": update the driver";
    return probe;
  }
  probe.usable = true;
  probe.name = prop.name;
  return probe;
}

}  // namespace musiq
