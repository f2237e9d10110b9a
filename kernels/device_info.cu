// CUDA builds: the GPU side of `musiq info` — devices, driver and runtime versions, and
// the cuBLAS and cuDNN versions, both as compiled against (header macros) and as the
// dynamic loader finds them (dlopen plus the libraries' own version calls). Nothing
// here links cuBLAS or cuDNN: the engine does not need them to start, and a missing
// library is reported, not fatal.
#include <cuda_runtime.h>
#include <dlfcn.h>
#include <library_types.h>  // libraryPropertyType

#include <string>

#include "kernels/gpu_device.h"

#if __has_include(<cublas_api.h>)
#include <cublas_api.h>
#endif
#if __has_include(<cudnn_version.h>)
#include <cudnn_version.h>
#endif

namespace musiq {
namespace {

std::string dotted(int major, int minor, int patch) {
  return std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch);
}

// Opens the first of `names` the loader finds; nullptr if none.
void* open_library(std::initializer_list<std::string> names) {
  for (const std::string& name : names)
    if (void* h = dlopen(name.c_str(), RTLD_LAZY | RTLD_LOCAL)) return h;
  return nullptr;
}

LibraryVersion cublas_version() {
  LibraryVersion v;
#ifdef CUBLAS_VER_MAJOR
  v.header = dotted(CUBLAS_VER_MAJOR, CUBLAS_VER_MINOR, CUBLAS_VER_PATCH);
  const std::string soname = "libcublas.so." + std::to_string(CUBLAS_VER_MAJOR);
#else
  const std::string soname = "libcublas.so." + std::to_string(CUDART_VERSION / 1000);
#endif
  if (void* h = open_library({soname, "libcublas.so"})) {
    // cublasStatus_t cublasGetProperty(libraryPropertyType, int*): needs no handle.
    using GetProperty = int (*)(int, int*);
    if (auto get = reinterpret_cast<GetProperty>(dlsym(h, "cublasGetProperty"))) {
      int major = 0, minor = 0, patch = 0;
      if (get(MAJOR_VERSION, &major) == 0 && get(MINOR_VERSION, &minor) == 0 &&
          get(PATCH_LEVEL, &patch) == 0)
        v.library = dotted(major, minor, patch);
    }
    dlclose(h);
  }
  return v;
}

LibraryVersion cudnn_version() {
  LibraryVersion v;
#ifdef CUDNN_MAJOR
  v.header = dotted(CUDNN_MAJOR, CUDNN_MINOR, CUDNN_PATCHLEVEL);
  const std::string soname = "libcudnn.so." + std::to_string(CUDNN_MAJOR);
#else
  const std::string soname = "libcudnn.so.9";
#endif
  if (void* h = open_library({soname, "libcudnn.so"})) {
    using GetVersion = size_t (*)();
    if (auto get = reinterpret_cast<GetVersion>(dlsym(h, "cudnnGetVersion"))) {
      // cuDNN 9 encodes major*10000 + minor*100 + patch; cuDNN 8 major*1000 + ...
      const size_t n = get();
      const bool nine = n >= 90000;
      const int major = static_cast<int>(nine ? n / 10000 : n / 1000);
      const int minor = static_cast<int>(nine ? (n % 10000) / 100 : (n % 1000) / 100);
      v.library = dotted(major, minor, static_cast<int>(n % 100));
    }
    dlclose(h);
  }
  return v;
}

}  // namespace

GpuInfo query_gpu_info() {
  GpuInfo info;
  info.cuda_build = true;
  cudaDriverGetVersion(&info.driver_version);   // 0 when no driver is installed
  cudaRuntimeGetVersion(&info.runtime_version);
  info.cublas = cublas_version();
  info.cudnn = cudnn_version();

  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    info.problem = status == cudaErrorInsufficientDriver
                       ? "no NVIDIA driver, or one too old for this CUDA build"
                       : std::string("no usable CUDA device (") + cudaGetErrorString(status) +
                             ")";
    cudaGetLastError();  // clear the sticky error for later callers
    return info;
  }
  if (count == 0) info.problem = "no CUDA device found";
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, i) != cudaSuccess) {
      cudaGetLastError();
      continue;
    }
    GpuDeviceInfo d;
    d.index = i;
    d.name = prop.name;
    d.memory_bytes = static_cast<int64_t>(prop.totalGlobalMem);
    d.compute_major = prop.major;
    d.compute_minor = prop.minor;
    d.multiprocessors = prop.multiProcessorCount;
    info.devices.push_back(d);
  }
  if (count > 0 && info.devices.empty()) info.problem = "cannot query any CUDA device";
  return info;
}

}  // namespace musiq
