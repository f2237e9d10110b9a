// Which processor runs the model: the GPU when one is usable, else the CPU, and why.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace musiq {

enum class DeviceKind { kAuto, kCpu, kCuda };

DeviceKind parse_device_kind(const std::string& name);  // auto|cpu|cuda, throws otherwise

struct DeviceChoice {
  DeviceKind kind = DeviceKind::kCpu;  // never kAuto
  std::string name;                    // "cpu" or "cuda"
  std::string description;             // e.g. "CPU (2 threads, OpenBLAS)"
  std::string fallback_reason;         // why auto did not use the GPU, if it did not
  bool gpu_present = false;            // a usable GPU exists (whether or not it is used)
};

// kCpu: the CPU. kCuda: the GPU, or musiq::Error when none is usable. kAuto: the GPU when
// one is usable, else the CPU with the reason; Scorer::open then still checks the GPU
// against the CPU (engine/gpu_self_check.h) and falls back to the CPU if it fails.
DeviceChoice select_device(DeviceKind requested);

// The CPU as a device choice; `fallback_reason` says why auto did not use the GPU.
DeviceChoice cpu_device(const std::string& fallback_reason, bool gpu_present);

// What the CUDA runtime reports, or why there is no usable GPU ("" if usable).
struct GpuProbe {
  bool usable = false;
  std::string name;
  std::string problem;
};
GpuProbe probe_gpu();  // defined in kernels/ (CUDA builds) or engine/gpu_probe_none.cc

// What `musiq info` reports about the processors (engine/device_info.cc).
struct CpuInfo {
  std::string model;         // /proc/cpuinfo "model name", or "" where unknown
  int hardware_threads = 0;  // std::thread::hardware_concurrency()
  int threads = 0;           // OpenMP threads the CPU path uses
  std::string blas;          // the BLAS library's own description (openblas_get_config)
};
CpuInfo query_cpu_info();

struct GpuDeviceInfo {
  int index = 0;
  std::string name;
  int64_t memory_bytes = 0;  // total global memory
  int compute_major = 0, compute_minor = 0;
  int multiprocessors = 0;
};

// A library version as compiled against (its header) and as found at run time (the
// shared library the dynamic loader would load, queried with dlopen); "" if absent.
struct LibraryVersion {
  std::string header;
  std::string library;
};

struct GpuInfo {
  bool cuda_build = false;  // compiled with the CUDA path
  std::string problem;      // why no GPU can be used; "" when one can
  int driver_version = 0;   // cudaDriverGetVersion, e.g. 13000 for 13.0; 0 = no driver
  int runtime_version = 0;  // cudaRuntimeGetVersion
  LibraryVersion cublas, cudnn;
  std::vector<GpuDeviceInfo> devices;
};
// Defined in kernels/device_info.cu (CUDA builds) or engine/device_info_none.cc.
GpuInfo query_gpu_info();

}  // namespace musiq
