#include "engine/device.h"

#include <algorithm>

#include "base/alternatives.h"
#include "base/error.h"
#include "cpu/isa.h"
#include "cpu/threads.h"

namespace musiq {

DeviceKind parse_device_kind(const std::string& name) {
  const auto found = std::ranges::find(kDeviceNames, name);
  if (found == kDeviceNames.end())
    throw Error("unknown device '" + name + "' (use " + alternatives(kDeviceNames) + ")");
  return DeviceKind(found - kDeviceNames.begin());
}

std::vector<Precision> precisions_on(DeviceKind device) {
  switch (device) {
    case DeviceKind::kCpu: return {Precision::kFp32, Precision::kBf16};
    case DeviceKind::kCuda: return {Precision::kFp32, Precision::kBf16, Precision::kTf32};
    case DeviceKind::kAuto: break;
  }
  return {};
}

DeviceChoice cpu_device(const std::string& fallback_reason, bool gpu_present) {
  DeviceChoice cpu;
  cpu.kind = DeviceKind::kCpu;
  cpu.name = device_name(cpu.kind);
  // Fewer while other processes keep cores busy (engine/model/thread_budget.h).
  // Also where a wrong MUSIQ_CPU_ISA is reported, before any op runs.
  cpu.description = "CPU (up to " + std::to_string(cpu::max_threads()) + " threads, " +
                    cpu::isa_name(cpu::cpu_isa()) + " kernels)";
  cpu.fallback_reason = fallback_reason;
  cpu.gpu_present = gpu_present;
  return cpu;
}

bool gpu_available(const DeviceChoice& chosen) {
  return chosen.gpu_present || probe_gpu().usable;
}

DeviceChoice select_device(DeviceKind requested) {
  if (requested == DeviceKind::kCpu) return cpu_device("", false);
  const GpuProbe gpu = probe_gpu();
  if (!gpu.usable) {
    if (requested == DeviceKind::kCuda) throw Error("--device cuda: " + gpu.problem);
    return cpu_device(gpu.problem, false);
  }
  DeviceChoice cuda;
  cuda.kind = DeviceKind::kCuda;
  cuda.name = device_name(cuda.kind);
  cuda.description = "GPU " + gpu.name + " (CUDA, fp32)";
  cuda.gpu_present = true;
  return cuda;
}

}  // namespace musiq
