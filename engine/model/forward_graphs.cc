#include "engine/model/forward_graphs.h"

#include <algorithm>

#include "kernels/cuda_check.h"

namespace musiq {

ForwardGraphs::~ForwardGraphs() {
  for (auto& [shape, entry] : graphs_) cudaGraphExecDestroy(entry.exec);  // nothing to tell
}

void ForwardGraphs::clear() {
  for (auto& [shape, entry] : graphs_) CUDA_CHECK(cudaGraphExecDestroy(entry.exec));
  graphs_.clear();
  seen_once_.clear();
}

bool ForwardGraphs::run(const std::vector<int64_t>& shape, cudaStream_t stream,
                        const std::function<void()>& enqueue) {
  ++clock_;
  if (const auto found = graphs_.find(shape); found != graphs_.end()) {
    found->second.last_used = clock_;
    CUDA_CHECK(cudaGraphLaunch(found->second.exec, stream));
    return true;
  }
  const auto seen = std::find(seen_once_.begin(), seen_once_.end(), shape);
  if (seen == seen_once_.end()) {
    seen_once_.push_back(shape);
    if (seen_once_.size() > kShapesRemembered) seen_once_.pop_front();
    enqueue();
    return false;
  }
  seen_once_.erase(seen);
  const cudaGraphExec_t exec = capture(stream, enqueue);
  if (graphs_.size() == kMostGraphs) evict_least_recent();
  graphs_.emplace(shape, Entry{exec, clock_});
  CUDA_CHECK(cudaGraphLaunch(exec, stream));
  return true;
}

cudaGraphExec_t ForwardGraphs::capture(cudaStream_t stream, const std::function<void()>& enqueue) {
  // ThreadLocal: only this thread's unsafe calls (allocation, synchronization) end the
  // capture, not another thread's work on its own stream.
  CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
  try {
    enqueue();
  } catch (...) {
    cudaGraph_t broken = nullptr;
    if (cudaStreamEndCapture(stream, &broken) == cudaSuccess) cudaGraphDestroy(broken);
    cudaGetLastError();  // the failed capture's error is not the one to report
    throw;
  }
  cudaGraph_t graph = nullptr;
  CUDA_CHECK(cudaStreamEndCapture(stream, &graph));
  cudaGraphExec_t exec = nullptr;
  const cudaError_t instantiated = cudaGraphInstantiate(&exec, graph, 0);
  const cudaError_t destroyed = cudaGraphDestroy(graph);  // the instance keeps its own copy
  CUDA_CHECK(instantiated);
  CUDA_CHECK(destroyed);
  return exec;
}

void ForwardGraphs::evict_least_recent() {
  const auto oldest = std::min_element(graphs_.begin(), graphs_.end(), [](const auto& a, const auto& b) {
    return a.second.last_used < b.second.last_used;
  });
  const cudaGraphExec_t exec = oldest->second.exec;
  graphs_.erase(oldest);
  CUDA_CHECK(cudaGraphExecDestroy(exec));
}

}  // namespace musiq
