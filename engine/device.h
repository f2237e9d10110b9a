// Which processor runs the model: the GPU when one is usable, else the CPU, and why.
#pragma once
#include <string>
#include <vector>

#include "base/precision.h"
#include "kernels/gpu_device.h"  // GpuProbe, GpuInfo: probe_gpu, query_gpu_info

namespace musiq {

enum class DeviceKind { kAuto, kCpu, kCuda };

// DeviceKind's names, in its order: what --device and the APIs take.
inline const std::vector<std::string> kDeviceNames = {"auto", "cpu", "cuda"};
inline const std::string& device_name(DeviceKind kind) { return kDeviceNames[size_t(kind)]; }

DeviceKind parse_device_kind(const std::string& name);  // one of kDeviceNames, throws otherwise

// The precisions (base/precision.h) a device computes; kAuto: none.
std::vector<Precision> precisions_on(DeviceKind device);

struct DeviceChoice {
  DeviceKind kind = DeviceKind::kCpu;  // never kAuto
  std::string name;                    // device_name(kind)
  std::string description;             // e.g. "CPU (up to 2 threads)"
  std::string fallback_reason;         // why auto did not use the GPU, if it did not
  bool gpu_present = false;            // a usable GPU exists (whether or not it is used)
};

// kCpu: the CPU. kCuda: the GPU, or musiq::Error when none is usable. kAuto: the GPU when
// one is usable, else the CPU with the reason; Scorer::open then still checks the GPU
// against the CPU (engine/model/gpu_self_check.h) and falls back to the CPU if it fails.
DeviceChoice select_device(DeviceKind requested);

// Whether a usable GPU was found, whichever device `chosen` is (for the CPU asked for by
// name, the GPU is probed now).
bool gpu_available(const DeviceChoice& chosen);

// The CPU as a device choice; `fallback_reason` says why auto did not use the GPU.
DeviceChoice cpu_device(const std::string& fallback_reason, bool gpu_present);

// What `musiq info` reports about the CPU (engine/device_info.cc); the GPU side is
// query_gpu_info (kernels/gpu_device.h).
struct CpuInfo {
  std::string model;         // /proc/cpuinfo "model name", or "" where unknown
  int hardware_threads = 0;  // std::thread::hardware_concurrency()
  int threads = 0;           // OpenMP threads the CPU path uses
  std::string blas;          // the BLAS library's own description (openblas_get_config)
  std::string kernels;       // the ISA the CPU kernels run: "avx512", "avx2" or "baseline"
  // What computes bf16 products (docs/precision.md): "amx", "avx512_bf16" or "plain"
  // (cpu/bf16_gemm.h).
  std::string bf16_kernel;
};
CpuInfo query_cpu_info();

}  // namespace musiq
