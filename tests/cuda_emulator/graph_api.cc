// CUDA graphs from one stream's capture: cudaStreamBeginCapture turns that stream's queued
// work (kernels, GEMMs, copies and memsets, host functions) into the nodes of a graph, in
// order; cudaGraphLaunch queues a copy of them on a stream, so each launch runs what was
// captured, with the arguments it was captured with, and copies read their sources when
// the launch runs (which is why only pinned host memory can be captured). The Global and
// ThreadLocal modes are emulated: they refuse calls that synchronize or allocate (from any
// thread, or from the capturing one); Relaxed mode is not.
#include <cuda_runtime.h>

#include <mutex>
#include <thread>

#include "tests/cuda_emulator/emulator.h"
#include "tests/cuda_emulator/settings.h"

using cuda_emulator::Emulator;

namespace {

using Lock = std::lock_guard<std::recursive_mutex>;

cudaError_t fail(cudaError_t error) {
  cuda_emulator::set_last_error(error);
  return error;
}

}  // namespace

extern "C" {

cudaError_t cudaStreamBeginCapture(cudaStream_t handle, cudaStreamCaptureMode mode) {
  Emulator& emu = Emulator::get();
  Lock lock(emu.mutex);
  CUstream_st* stream = emu.stream(handle);
  if (!stream) return fail(cudaErrorInvalidResourceHandle);
  if (stream == emu.stream(nullptr)) return fail(cudaErrorStreamCaptureUnsupported);
  if (mode == cudaStreamCaptureModeRelaxed) {
    cuda_emulator::violation("cudaStreamBeginCapture: cudaStreamCaptureModeRelaxed is not emulated");
    return fail(cudaErrorInvalidValue);
  }
  if (stream->capture) return fail(cudaErrorIllegalState);
  // Work queued before the capture is not part of it: it runs first, as on a GPU.
  emu.synchronize(stream);
  stream->capture = std::make_unique<CUgraph_st>();
  stream->capture_broken = false;
  stream->capture_mode = mode;
  stream->capture_thread = std::this_thread::get_id();
  return cudaSuccess;
}

cudaError_t cudaStreamEndCapture(cudaStream_t handle, cudaGraph_t* graph) {
  Emulator& emu = Emulator::get();
  Lock lock(emu.mutex);
  CUstream_st* stream = emu.stream(handle);
  if (!stream || !graph) return fail(cudaErrorInvalidValue);
  *graph = nullptr;
  if (!stream->capture) return fail(cudaErrorIllegalState);
  std::unique_ptr<CUgraph_st> captured = std::move(stream->capture);
  if (stream->capture_broken) return fail(cudaErrorStreamCaptureInvalidated);
  *graph = captured.release();
  return cudaSuccess;
}

cudaError_t cudaStreamIsCapturing(cudaStream_t handle, cudaStreamCaptureStatus* status) {
  Emulator& emu = Emulator::get();
  Lock lock(emu.mutex);
  CUstream_st* stream = emu.stream(handle);
  if (!stream || !status) return fail(cudaErrorInvalidValue);
  *status = !stream->capture          ? cudaStreamCaptureStatusNone
            : stream->capture_broken ? cudaStreamCaptureStatusInvalidated
                                     : cudaStreamCaptureStatusActive;
  return cudaSuccess;
}

cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph,
                                 unsigned long long flags) {
  Emulator& emu = Emulator::get();
  Lock lock(emu.mutex);
  if (!exec || !graph || flags != 0) return fail(cudaErrorInvalidValue);
  *exec = new CUgraphExec_st{graph->nodes};
  return cudaSuccess;
}

cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t handle) {
  Emulator& emu = Emulator::get();
  Lock lock(emu.mutex);
  CUstream_st* stream = emu.stream(handle);
  if (!exec || !stream) return fail(cudaErrorInvalidResourceHandle);
  if (stream->capture) return fail(cudaErrorStreamCaptureUnsupported);
  ++emu.counts.graphs;
  for (const auto& node : exec->nodes) emu.enqueue(stream, node);
  return cudaSuccess;
}

cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
  Emulator& emu = Emulator::get();
  Lock lock(emu.mutex);
  // Launches already queued hold their own copies of the nodes.
  delete exec;
  return cudaSuccess;
}

cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
  Emulator& emu = Emulator::get();
  Lock lock(emu.mutex);
  delete graph;
  return cudaSuccess;
}

}  // extern "C"
