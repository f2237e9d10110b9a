// The CUDA runtime functions the project calls, on the emulated device (emulator.h): the
// declarations are the toolkit's own (cuda_runtime_api.h), so signatures cannot drift.
// Copies follow the runtime's documented synchronisation: from pageable memory to the
// device the data are staged at the call and the copy is queued; to pageable memory the
// call returns once the copy is done; with pinned memory an async copy is only queued.
#include <cuda_runtime.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "tests/cuda_emulator/emulator.h"
#include "tests/cuda_emulator/settings.h"

using cuda_emulator::Emulator;
using cuda_emulator::MemoryKind;

namespace {

constexpr int kMaxSharedOptIn = 232448;  // bytes per block with the opt-in (sm_90)
constexpr int kDefaultSharedLimit = 48 * 1024;

using Lock = std::lock_guard<std::recursive_mutex>;

cudaError_t fail(cudaError_t error) {
  cuda_emulator::set_last_error(error);
  return error;
}

// While a capture forbids it (graph_api.cc: Global mode, or ThreadLocal mode on the thread
// that captures) a call that synchronizes or allocates is refused, and it breaks those
// captures: cudaStreamEndCapture then fails. True when `emu` refuses for that reason.
bool refused_during_capture(Emulator& emu) {
  if (!emu.capturing()) return false;
  emu.break_captures();
  fail(cudaErrorStreamCaptureUnsupported);
  return true;
}

// Events in a capture (cross-stream captures, event nodes) are not emulated: the project's
// captures hold one stream's kernels, GEMMs and copies. Reported, so that a test cannot
// pass on work the emulator would not have run as a GPU does.
cudaError_t capture_unsupported(Emulator& emu, const char* call) {
  cuda_emulator::violation(std::string(call) + " on a capturing stream: not emulated");
  emu.break_captures();
  return fail(cudaErrorStreamCaptureUnsupported);
}

double now_ms() {
  using Clock = std::chrono::steady_clock;
  return std::chrono::duration<double, std::milli>(Clock::now().time_since_epoch()).count();
}

bool is_device(const void* p) {
  const auto a = Emulator::get().memory.find(p);
  return a && a->kind == MemoryKind::kDevice;
}

bool is_pinned(const void* p) {
  const auto a = Emulator::get().memory.find(p);
  return a && a->kind == MemoryKind::kPinnedHost;
}

cudaError_t copy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind,
                 cudaStream_t handle, bool synchronous) {
  Emulator& emu = Emulator::get();
  Lock lock(emu.mutex);
  CUstream_st* stream = emu.stream(handle);
  if (!stream) return fail(cudaErrorInvalidResourceHandle);
  if (synchronous && refused_during_capture(emu)) return cudaErrorStreamCaptureUnsupported;
  if (kind == cudaMemcpyDefault)
    kind = is_device(src) ? (is_device(dst) ? cudaMemcpyDeviceToDevice : cudaMemcpyDeviceToHost)
                          : (is_device(dst) ? cudaMemcpyHostToDevice : cudaMemcpyHostToHost);
  const char* call = synchronous ? "cudaMemcpy" : "cudaMemcpyAsync";
  const bool from_device = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
  const bool to_device = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
  if (kind != cudaMemcpyHostToHost && !from_device && !to_device)
    return fail(cudaErrorInvalidMemcpyDirection);
  if (bytes == 0) return cudaSuccess;
  ++emu.counts.copies;
  if (from_device && !cuda_emulator::check_device_range(call, src, bytes))
    return fail(cudaErrorInvalidValue);
  if (to_device && !cuda_emulator::check_device_range(call, dst, bytes))
    return fail(cudaErrorInvalidValue);

  const bool pageable = kind == cudaMemcpyHostToDevice ? !is_pinned(src)
                        : kind == cudaMemcpyDeviceToHost && !is_pinned(dst);
  if (stream->capture && pageable) {  // a graph copies at launch, so from pinned memory only
    emu.break_captures();
    return fail(cudaErrorStreamCaptureUnsupported);
  }
  if (kind == cudaMemcpyHostToDevice && !is_pinned(src)) {
    if (synchronous) emu.synchronize(stream);
    auto staged = std::make_shared<std::vector<char>>(static_cast<const char*>(src),
                                                      static_cast<const char*>(src) + bytes);
    emu.enqueue(stream, [dst, staged] { std::memcpy(dst, staged->data(), staged->size()); });
    return cudaSuccess;
  }
  const auto op = emu.enqueue(stream, [dst, src, bytes] { std::memcpy(dst, src, bytes); });
  const bool to_pageable = !to_device && !is_pinned(dst);
  const bool waits = kind == cudaMemcpyDeviceToDevice ? false : (synchronous || to_pageable);
  if (waits) emu.complete(op);
  return cudaSuccess;
}

cudaError_t fill(void* p, int value, size_t bytes, cudaStream_t handle, const char* call) {
  Emulator& emu = Emulator::get();
  Lock lock(emu.mutex);
  CUstream_st* stream = emu.stream(handle);
  if (!stream) return fail(cudaErrorInvalidResourceHandle);
  if (bytes == 0) return cudaSuccess;
  if (!cuda_emulator::check_device_range(call, p, bytes)) return fail(cudaErrorInvalidValue);
  ++emu.counts.copies;
  emu.enqueue(stream, [p, value, bytes] { std::memset(p, value, bytes); });
  return cudaSuccess;
}

}  // namespace

extern "C" {

cudaError_t cudaGetLastError() { return cuda_emulator::take_last_error(); }
cudaError_t cudaPeekAtLastError() { return cuda_emulator::peek_last_error(); }

const char* cudaGetErrorName(cudaError_t error) {
  switch (error) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidMemcpyDirection: return "cudaErrorInvalidMemcpyDirection";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case cudaErrorNotReady: return "cudaErrorNotReady";
    default: return "cudaErrorUnknown";
  }
}

const char* cudaGetErrorString(cudaError_t error) {
  switch (error) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidMemcpyDirection: return "invalid copy direction for memcpy";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    case cudaErrorNotReady: return "device not ready";
    default: return "unknown error";
  }
}

cudaError_t cudaGetDeviceCount(int* count) {
  *count = 1;
  return cudaSuccess;
}

cudaError_t cudaGetDevice(int* device) {
  *device = 0;
  return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) {
  return device == 0 ? cudaSuccess : fail(cudaErrorInvalidDevice);
}

cudaError_t cudaDriverGetVersion(int* version) {
  *version = CUDART_VERSION;
  return cudaSuccess;
}

cudaError_t cudaRuntimeGetVersion(int* version) {
  *version = CUDART_VERSION;
  return cudaSuccess;
}

// An H100-like device (compute capability 9.0), named so that no one mistakes it for one.
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device) {
  if (device != 0) return fail(cudaErrorInvalidDevice);
  *prop = cudaDeviceProp{};
  std::snprintf(prop->name, sizeof prop->name, "CUDA emulator (CPU)");
  prop->totalGlobalMem = cuda_emulator::DeviceMemory::kTotalBytes;
  prop->sharedMemPerBlock = kDefaultSharedLimit;
  prop->sharedMemPerBlockOptin = kMaxSharedOptIn;
  prop->regsPerBlock = 65536;
  prop->warpSize = 32;
  prop->maxThreadsPerBlock = 1024;
  prop->maxThreadsDim[0] = 1024;
  prop->maxThreadsDim[1] = 1024;
  prop->maxThreadsDim[2] = 64;
  prop->maxGridSize[0] = 0x7FFFFFFF;
  prop->maxGridSize[1] = 65535;
  prop->maxGridSize[2] = 65535;
  prop->major = 9;
  prop->minor = 0;
  prop->multiProcessorCount = 132;
  prop->l2CacheSize = 50 << 20;
  prop->maxThreadsPerMultiProcessor = 2048;
  return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device) {
  cudaDeviceProp prop;
  if (const cudaError_t e = cudaGetDeviceProperties(&prop, device); e != cudaSuccess) return e;
  switch (attr) {
    case cudaDevAttrL2CacheSize: *value = prop.l2CacheSize; return cudaSuccess;
    case cudaDevAttrMultiProcessorCount: *value = prop.multiProcessorCount; return cudaSuccess;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *value = kMaxSharedOptIn; return cudaSuccess;
    case cudaDevAttrMaxThreadsPerBlock: *value = prop.maxThreadsPerBlock; return cudaSuccess;
    case cudaDevAttrComputeCapabilityMajor: *value = prop.major; return cudaSuccess;
    case cudaDevAttrComputeCapabilityMinor: *value = prop.minor; return cudaSuccess;
    default: return fail(cudaErrorInvalidValue);
  }
}

cudaError_t cudaDeviceSynchronize() {
  Emulator& emu = Emulator::get();
  Lock lock(emu.mutex);
  if (refused_during_capture(emu)) return cudaErrorStreamCaptureUnsupported;
  emu.synchronize_device();
  return cudaSuccess;
}

cudaError_t cudaMalloc(void** p, size_t bytes) {
  Emulator& emu = Emulator::get();
  Lock lock(emu.mutex);
  *p = nullptr;
  if (refused_during_capture(emu)) return cudaErrorStreamCaptureUnsupported;
  if (bytes == 0) return cudaSuccess;
  *p = emu.memory.allocate(bytes, MemoryKind::kDevice);
  return *p ? cudaSuccess : fail(cudaErrorMemoryAllocation);
}

// Like a GPU's, cudaFree waits for the device first: queued work may still use the memory.
cudaError_t cudaFree(void* p) {
  Emulator& emu = Emulator::get();
  Lock lock(emu.mutex);
  if (!p) return cudaSuccess;
  if (refused_during_capture(emu)) return cudaErrorStreamCaptureUnsupported;
  emu.synchronize_device();
  if (!emu.memory.release(p, MemoryKind::kDevice)) {
    cuda_emulator::violation("cudaFree: a pointer that cudaMalloc did not return");
    return fail(cudaErrorInvalidValue);
  }
  return cudaSuccess;
}

cudaError_t cudaHostAlloc(void** p, size_t bytes, unsigned int) {
  Emulator& emu = Emulator::get();
  Lock lock(emu.mutex);
  *p = nullptr;
  if (refused_during_capture(emu)) return cudaErrorStreamCaptureUnsupported;
  *p = emu.memory.allocate(bytes, MemoryKind::kPinnedHost);
  return *p ? cudaSuccess : fail(cudaErrorMemoryAllocation);
}

cudaError_t cudaMallocHost(void** p, size_t bytes) { return cudaHostAlloc(p, bytes, 0); }

cudaError_t cudaFreeHost(void* p) {
  Emulator& emu = Emulator::get();
  Lock lock(emu.mutex);
  if (!p) return cudaSuccess;
  if (refused_during_capture(emu)) return cudaErrorStreamCaptureUnsupported;
  emu.synchronize_device();
  if (!emu.memory.release(p, MemoryKind::kPinnedHost)) {
    cuda_emulator::violation("cudaFreeHost: a pointer that cudaHostAlloc did not return");
    return fail(cudaErrorInvalidValue);
  }
  return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
  Emulator& emu = Emulator::get();
  Lock lock(emu.mutex);
  *total_bytes = cuda_emulator::DeviceMemory::kTotalBytes;
  *free_bytes = *total_bytes - emu.memory.device_bytes_in_use();
  return cudaSuccess;
}

cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  return copy(dst, src, bytes, kind, nullptr, true);
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t stream) {
  return copy(dst, src, bytes, kind, stream, false);
}

cudaError_t cudaMemset(void* p, int value, size_t bytes) {
  return fill(p, value, bytes, nullptr, "cudaMemset");
}

cudaError_t cudaMemsetAsync(void* p, int value, size_t bytes, cudaStream_t stream) {
  return fill(p, value, bytes, stream, "cudaMemsetAsync");
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned int flags) {
  Emulator& emu = Emulator::get();
  Lock lock(emu.mutex);
  *stream = emu.create_stream((flags & cudaStreamNonBlocking) == 0);
  return cudaSuccess;
}

cudaError_t cudaStreamCreate(cudaStream_t* stream) {
  return cudaStreamCreateWithFlags(stream, cudaStreamDefault);
}

cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  Emulator& emu = Emulator::get();
  Lock lock(emu.mutex);
  return emu.destroy_stream(stream) ? cudaSuccess : fail(cudaErrorInvalidResourceHandle);
}

cudaError_t cudaStreamSynchronize(cudaStream_t handle) {
  Emulator& emu = Emulator::get();
  Lock lock(emu.mutex);
  CUstream_st* stream = emu.stream(handle);
  if (!stream) return fail(cudaErrorInvalidResourceHandle);
  if (refused_during_capture(emu)) return cudaErrorStreamCaptureUnsupported;
  emu.synchronize(stream);
  return cudaSuccess;
}

cudaError_t cudaStreamWaitEvent(cudaStream_t handle, cudaEvent_t event, unsigned int) {
  Emulator& emu = Emulator::get();
  Lock lock(emu.mutex);
  CUstream_st* stream = emu.stream(handle);
  if (!stream || !event) return fail(cudaErrorInvalidResourceHandle);
  if (stream->capture) return capture_unsupported(emu, "cudaStreamWaitEvent");
  const auto op = emu.enqueue(stream, [] {});
  if (event->marker) op->after.push_back(event->marker);
  return cudaSuccess;
}

cudaError_t cudaLaunchHostFunc(cudaStream_t handle, cudaHostFn_t fn, void* data) {
  Emulator& emu = Emulator::get();
  Lock lock(emu.mutex);
  CUstream_st* stream = emu.stream(handle);
  if (!stream) return fail(cudaErrorInvalidResourceHandle);
  emu.enqueue(stream, [fn, data] { fn(data); });
  return cudaSuccess;
}

cudaError_t cudaEventCreate(cudaEvent_t* event) {
  *event = new CUevent_st;
  return cudaSuccess;
}

cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned int) {
  return cudaEventCreate(event);
}

cudaError_t cudaEventDestroy(cudaEvent_t event) {
  Emulator& emu = Emulator::get();
  Lock lock(emu.mutex);
  if (!event) return fail(cudaErrorInvalidResourceHandle);
  delete event;  // a queued marker keeps only its own state alive
  return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t handle) {
  Emulator& emu = Emulator::get();
  Lock lock(emu.mutex);
  CUstream_st* stream = emu.stream(handle);
  if (!stream || !event) return fail(cudaErrorInvalidResourceHandle);
  if (stream->capture) return capture_unsupported(emu, "cudaEventRecord");
  auto time = std::make_shared<double>(0.0);
  event->time_ms = time;
  event->marker = emu.enqueue(stream, [time] { *time = now_ms(); });
  return cudaSuccess;
}

cudaError_t cudaEventSynchronize(cudaEvent_t event) {
  Emulator& emu = Emulator::get();
  Lock lock(emu.mutex);
  if (!event) return fail(cudaErrorInvalidResourceHandle);
  if (refused_during_capture(emu)) return cudaErrorStreamCaptureUnsupported;
  emu.complete(event->marker);
  return cudaSuccess;
}

cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
  Emulator& emu = Emulator::get();
  Lock lock(emu.mutex);
  if (!start || !end || !start->marker || !end->marker)
    return fail(cudaErrorInvalidResourceHandle);
  if (!start->marker->done || !end->marker->done) return fail(cudaErrorNotReady);
  *ms = static_cast<float>(*end->time_ms - *start->time_ms);
  return cudaSuccess;
}

cudaError_t cudaFuncSetAttribute(const void* func, cudaFuncAttribute attr, int value) {
  Emulator& emu = Emulator::get();
  Lock lock(emu.mutex);
  if (!func) return fail(cudaErrorInvalidValue);
  if (attr == cudaFuncAttributeMaxDynamicSharedMemorySize) {
    if (value < 0 || value > kMaxSharedOptIn) return fail(cudaErrorInvalidValue);
    emu.max_dynamic_shared[func] = value;
  }
  return cudaSuccess;
}

cudaError_t cudaFuncGetAttributes(cudaFuncAttributes* attr, const void* func) {
  Emulator& emu = Emulator::get();
  Lock lock(emu.mutex);
  if (!func) return fail(cudaErrorInvalidValue);
  *attr = cudaFuncAttributes{};
  attr->maxThreadsPerBlock = 1024;
  attr->ptxVersion = attr->binaryVersion = 90;
  const auto it = emu.max_dynamic_shared.find(func);
  attr->maxDynamicSharedSizeBytes = it == emu.max_dynamic_shared.end() ? 0 : it->second;
  return cudaSuccess;
}

}  // extern "C"
