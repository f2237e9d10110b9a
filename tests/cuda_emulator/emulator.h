// The emulated device's state: its memory, its streams and events, and the per-kernel
// attributes, behind one lock that every runtime and cuBLAS call takes.
//
// Work queued on a stream runs only at a synchronisation point (a stream, event or device
// synchronisation, a synchronous copy, cudaFree), never in the background: code that
// forgets a synchronisation reads stale (NaN-poisoned) data every time, not sometimes.
// Ordering follows CUDA's stream rules: FIFO within a stream; the legacy default stream
// waits for all earlier work of the blocking streams and they wait for its earlier work;
// streams made with cudaStreamNonBlocking are ordered with nothing but their own work and
// the events they wait for.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tests/cuda_emulator/device_memory.h"

namespace cuda_emulator {

// The device work queued since the process started, counted where each call queues it:
// kernel launches, GEMMs (cuBLAS and cuBLASLt calls), copies and memsets, and graph launches.
// A GPU pays a launch's overhead for each; tests read them to count what a forward pass
// costs. Work captured into a graph counts once, when captured; each launch of the graph
// counts as one graph.
struct WorkCounts {
  int64_t kernels = 0;
  int64_t gemms = 0;
  int64_t copies = 0;
  int64_t graphs = 0;
  int64_t total() const { return kernels + gemms + copies + graphs; }
};

struct Operation {
  std::function<void()> run;
  CUstream_st* stream = nullptr;
  std::vector<std::shared_ptr<Operation>> after;  // other streams' work to finish first
  bool done = false;
};

}  // namespace cuda_emulator

// A graph captured from one stream: its work in the order it was queued (each node after the
// one before, as a single stream's capture makes them).
struct CUgraph_st {
  std::vector<std::function<void()>> nodes;
};

struct CUgraphExec_st {
  std::vector<std::function<void()>> nodes;
};

struct CUstream_st {
  bool blocking = true;  // ordered with the legacy default stream
  std::deque<std::shared_ptr<cuda_emulator::Operation>> queue;
  // While capturing: the graph that work queued on this stream goes into, instead of the
  // queue; `capture_broken` once a call that cannot be captured was made.
  std::unique_ptr<CUgraph_st> capture;
  bool capture_broken = false;
  cudaStreamCaptureMode capture_mode = cudaStreamCaptureModeGlobal;
  std::thread::id capture_thread;  // the thread that began it
};

struct CUevent_st {
  std::shared_ptr<cuda_emulator::Operation> marker;  // null until recorded
  std::shared_ptr<double> time_ms;                   // set when the marker runs
};

namespace cuda_emulator {

class Emulator {
 public:
  static Emulator& get();

  // Every public call holds this for its whole duration (work runs under it too).
  std::recursive_mutex mutex;
  DeviceMemory memory;
  std::map<const void*, int> max_dynamic_shared;  // cudaFuncAttributeMaxDynamicSharedMemorySize
  WorkCounts counts;

  // The stream behind a handle (0, cudaStreamLegacy and cudaStreamPerThread name the
  // legacy default stream); nullptr if the handle is not a live stream.
  CUstream_st* stream(cudaStream_t handle);
  CUstream_st* create_stream(bool blocking);
  bool destroy_stream(CUstream_st* stream);  // runs its queued work first

  // Queues `run` on `stream`, or adds it to the stream's graph while it captures (the
  // returned operation is then done already: nothing waits for captured work).
  std::shared_ptr<Operation> enqueue(CUstream_st* stream, std::function<void()> run);
  // Whether a capture forbids the calling thread the calls that synchronize or allocate: a
  // capture in cudaStreamCaptureModeGlobal, or one in ThreadLocal mode this thread began.
  bool capturing() const;
  void break_captures();  // those captures fail at their end
  void complete(std::shared_ptr<Operation> op);  // with everything it depends on (a copy: it pops queues)
  void synchronize(CUstream_st* stream);
  void synchronize_device();

 private:
  CUstream_st legacy_;
  std::set<CUstream_st*> streams_;
};

// A copy of Emulator::get().counts, taken under its lock.
WorkCounts work_counts();

// The calling host thread's last error, as cudaGetLastError returns and clears it.
void set_last_error(cudaError_t error);
cudaError_t take_last_error();
cudaError_t peek_last_error();

// The rule that `p` (`bytes` long) names device memory, for copies and memsets: a report
// through violation() naming `call` when it does not.
bool check_device_range(const char* call, const void* p, size_t bytes);

}  // namespace cuda_emulator
