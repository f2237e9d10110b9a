// A forward pass queued on a GPU stream costs ~150 launches for one image, each a few
// microseconds of host and driver time: at batch 1 that is about as long as the device's
// own work. ForwardGraphs replays a pass as one CUDA graph instead, captured per packed-batch
// shape (the sequence starts, which fix every launch's arguments given the workspace).
// Capturing costs more than one eager pass, so a shape is captured the second time it comes
// (a batch job over photos of a few sizes, a service at its batch size), not the first.
// Host code for GpuModel; its workspace must not move while its graphs live (clear()).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <vector>

namespace musiq {

class ForwardGraphs {
 public:
  ForwardGraphs() = default;
  ForwardGraphs(const ForwardGraphs&) = delete;
  ForwardGraphs& operator=(const ForwardGraphs&) = delete;
  ~ForwardGraphs();

  // Queues on `stream` the work `enqueue` queues there (a forward pass for the batch whose
  // sequence starts are `shape`): by launching the graph of that shape, by capturing one
  // and launching it, or by calling `enqueue` as it is. True if a graph ran it.
  bool run(const std::vector<int64_t>& shape, cudaStream_t stream,
           const std::function<void()>& enqueue);

  // Forgets every graph: the buffers their launches were captured with have moved.
  void clear();


 private:
  static constexpr size_t kMostGraphs = 16;  // each holds ~150 nodes: a few hundred KB
  static constexpr size_t kShapesRemembered = 64;
  struct Entry {
    cudaGraphExec_t exec;
    int64_t last_used;
  };
  std::map<std::vector<int64_t>, Entry> graphs_;
  std::deque<std::vector<int64_t>> seen_once_;
  int64_t clock_ = 0;

  cudaGraphExec_t capture(cudaStream_t stream, const std::function<void()>& enqueue);
  void evict_least_recent();
};

}  // namespace musiq
