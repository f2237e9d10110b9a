// CUDA builds: find a usable GPU, and say precisely why when there is none.
#include <cuda_runtime.h>

#include <string>

#include "kernels/gpu_device.h"

namespace musiq {
namespace {

// Compiled for the same architectures as every kernel of musiq_kernels
// (MUSIQ_CUDA_ARCHITECTURES, kernels/CMakeLists.txt): when the runtime finds no code in this
// binary for the device, it has none for our kernels either, and every launch would fail
// with "no kernel image is available".
__global__ void probe_kernel() {}

std::string version(int v) { return std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10); }

}  // namespace

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
    cudaGetLastError();  // clear it
    return probe;
  }
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess) {
    probe.problem = "cannot query CUDA device 0";
    cudaGetLastError();
    return probe;
  }
  int driver = 0, runtime = 0;
  if (cudaDriverGetVersion(&driver) == cudaSuccess &&
      cudaRuntimeGetVersion(&runtime) == cudaSuccess && driver / 1000 < runtime / 1000) {
    // Same major version works (minor-version compatibility); an older major does not.
    probe.problem = "the NVIDIA driver supports CUDA " + version(driver) +
                    ", older than this build's CUDA " + version(runtime) + ": update the driver";
    return probe;
  }
  const std::string gpu = std::string("GPU ") + prop.name + " (compute capability " +
                          std::to_string(prop.major) + "." + std::to_string(prop.minor) + ")";
  cudaFuncAttributes attributes{};
  const cudaError_t code = cudaFuncGetAttributes(&attributes, probe_kernel);
  if (code != cudaSuccess) {
    cudaGetLastError();  // not sticky, but leave nothing behind
    probe.problem = gpu + ": this build has no code for it (" + cudaGetErrorString(code) +
                    "; built for CUDA architectures " MUSIQ_CUDA_ARCHITECTURES
                    "): rebuild with -DCMAKE_CUDA_ARCHITECTURES=" +
                    std::to_string(prop.major) + std::to_string(prop.minor);
    return probe;
  }
  probe.usable = true;
  probe.name = prop.name;
  return probe;
}

}  // namespace musiq
