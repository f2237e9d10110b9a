// CPU-only builds: there is never a GPU to use.
#include "kernels/gpu_device.h"

namespace musiq {

GpuProbe probe_gpu() { return {false, "", "this build has no CUDA support"}; }

}  // namespace musiq
