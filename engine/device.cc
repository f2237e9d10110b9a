#include "engine/device.h"

#include <omp.h>

#include "engine/error.h"

namespace musiq {

DeviceKind parse_device_kind(const std::string& name) {
  if (name == "auto") return DeviceKind::kAuto;
  if (name == "cpu") return DeviceKind::kCpu;
  if (name == "cuda") return DeviceKind::kCuda;
  throw Error("unknown device '" + name + "' (use auto, cpu or cuda)");
}

DeviceChoice select_device(DeviceKind requested) {
  DeviceChoice cpu;
  cpu.kind = DeviceKind::kCpu;
  cpu.name = "cpu";
  cpu.description = "CPU (" + std::to_string(omp_get_max_threads()) + " threads, OpenBLAS)";
  if (requested == DeviceKind::kCpu) return cpu;

  const GpuProbe gpu = probe_gpu();
  // The GPU forward pass is not written yet: the GPU is only reported.
  const std::string problem =
      gpu.usable ? "GPU " + gpu.name + " found, but this build has no GPU forward pass yet"
                 : gpu.problem;
  if (requested == DeviceKind::kCuda) throw Error("--device cuda: " + problem);
  cpu.fallback_reason = problem;
  cpu.gpu_present = gpu.usable;
  return cpu;
}

}  // namespace musiq
