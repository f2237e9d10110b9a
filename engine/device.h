// Which processor runs the model: the GPU when one is usable, else the CPU, and why.
#pragma once
#include <string>

namespace musiq {

enum class DeviceKind { kAuto, kCpu, kCuda };

DeviceKind parse_device_kind(const std::string& name);  // auto|cpu|cuda, throws otherwise

struct DeviceChoice {
  DeviceKind kind = DeviceKind::kCpu;  // never kAuto
  std::string name;                    // "cpu" or "cuda"
  std::string description;             // e.g. "CPU (2 threads, OpenBLAS)"
  std::string fallback_reason;         // why auto did not pick the GPU, if it did not
};

// Throws musiq::Error when `requested` is kCuda and no GPU path can run.
DeviceChoice select_device(DeviceKind requested);

// What the CUDA runtime reports, or why there is no usable GPU ("" if usable).
struct GpuProbe {
  bool usable = false;
  std::string name;
  std::string problem;
};
GpuProbe probe_gpu();  // defined in kernels/ (CUDA builds) or engine/gpu_probe_none.cc

}  // namespace musiq
