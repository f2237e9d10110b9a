#include "tests/cuda_emulator/emulator.h"

#include <cstdio>

#include "tests/cuda_emulator/settings.h"

namespace cuda_emulator {
namespace {

thread_local cudaError_t last_error = cudaSuccess;

}  // namespace

Emulator& Emulator::get() {
  static Emulator* emulator = new Emulator;  // never destroyed: used until the process ends
  return *emulator;
}

CUstream_st* Emulator::stream(cudaStream_t handle) {
  if (handle == nullptr || handle == cudaStreamLegacy || handle == cudaStreamPerThread)
    return &legacy_;
  return streams_.count(handle) ? handle : nullptr;
}

CUstream_st* Emulator::create_stream(bool blocking) {
  auto* s = new CUstream_st;
  s->blocking = blocking;
  streams_.insert(s);
  return s;
}

bool Emulator::destroy_stream(CUstream_st* s) {
  if (!streams_.count(s)) return false;
  synchronize(s);
  streams_.erase(s);
  delete s;
  return true;
}

std::shared_ptr<Operation> Emulator::enqueue(CUstream_st* s, std::function<void()> run) {
  auto op = std::make_shared<Operation>();
  op->stream = s;
  if (s->capture) {
    s->capture->nodes.push_back(std::move(run));
    op->done = true;
    return op;
  }
  op->run = std::move(run);
  if (s == &legacy_) {
    for (CUstream_st* other : streams_)
      if (other->blocking && !other->queue.empty()) op->after.push_back(other->queue.back());
  } else if (s->blocking && !legacy_.queue.empty()) {
    op->after.push_back(legacy_.queue.back());
  }
  s->queue.push_back(op);
  return op;
}

namespace {

bool forbids_this_thread(const CUstream_st& s) {
  return s.capture && (s.capture_mode == cudaStreamCaptureModeGlobal ||
                       s.capture_thread == std::this_thread::get_id());
}

}  // namespace

bool Emulator::capturing() const {
  for (const CUstream_st* s : streams_)
    if (forbids_this_thread(*s)) return true;
  return false;
}

void Emulator::break_captures() {
  for (CUstream_st* s : streams_)
    if (forbids_this_thread(*s)) s->capture_broken = true;
}

void Emulator::complete(std::shared_ptr<Operation> op) {
  if (!op || op->done) return;
  CUstream_st* s = op->stream;
  // Dependencies always point at earlier work, so this recursion ends, and nothing it runs
  // can take this stream's front from under us.
  while (!op->done) {
    const std::shared_ptr<Operation> next = s->queue.front();
    for (const auto& d : next->after) complete(d);
    s->queue.pop_front();
    next->run();
    next->done = true;
    next->run = nullptr;  // frees what the work held (staged copies, kernel arguments)
    next->after.clear();
  }
}

void Emulator::synchronize(CUstream_st* s) {
  if (!s->queue.empty()) complete(s->queue.back());
}

void Emulator::synchronize_device() {
  synchronize(&legacy_);
  for (CUstream_st* s : streams_) synchronize(s);
}

void set_last_error(cudaError_t error) { last_error = error; }

cudaError_t take_last_error() {
  const cudaError_t e = last_error;
  last_error = cudaSuccess;
  return e;
}

cudaError_t peek_last_error() { return last_error; }

WorkCounts work_counts() {
  Emulator& emu = Emulator::get();
  std::lock_guard<std::recursive_mutex> lock(emu.mutex);
  return emu.counts;
}

bool check_device_range(const char* call, const void* p, size_t bytes) {
  std::string problem;
  if (Emulator::get().memory.device_range(p, bytes, &problem)) return true;
  char address[32];
  std::snprintf(address, sizeof address, "%p", p);
  violation(std::string(call) + ": " + std::to_string(bytes) + " bytes at " + address + " " +
            problem);
  return false;
}

}  // namespace cuda_emulator
