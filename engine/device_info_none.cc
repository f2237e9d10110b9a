// CPU-only builds: `musiq info` reports that there is no GPU path, and why.
#include "kernels/gpu_device.h"

namespace musiq {

GpuInfo query_gpu_info() {
  GpuInfo info;
  info.cuda_build = false;
  info.problem = "this build has no CUDA support";
  return info;
}

}  // namespace musiq
