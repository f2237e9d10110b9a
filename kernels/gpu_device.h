// What kernels/ tells the engine about the GPU: whether one is usable (kernels/gpu_probe.cu)
// and what `musiq info` reports about it (kernels/device_info.cu). Plain C++, no CUDA types:
// engine/device.h includes it in every build, and CPU-only builds link the engine's
// stand-ins (engine/gpu_probe_none.cc, engine/device_info_none.cc) instead.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace musiq {

// What the CUDA runtime reports, or why there is no usable GPU ("" if usable).
struct GpuProbe {
  bool usable = false;
  std::string name;
  std::string problem;
};
GpuProbe probe_gpu();

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
GpuInfo query_gpu_info();

}  // namespace musiq
