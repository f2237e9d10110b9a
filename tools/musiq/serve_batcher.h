// Dynamic batching for `musiq serve`: requests from many connections wait in one queue,
// and a single thread runs them through the model in packed forward passes. A pass starts
// when the queue holds a full pass (the row budget, or the image count), or when the
// oldest request has waited max_wait; it takes requests first come, first served while
// their rows fit, so a huge image runs alone and cannot hold small ones back for longer
// than its own pass.
#pragma once
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

#include "engine/musiq.h"
#include "engine/pipeline.h"

namespace musiq::cli {

struct BatcherOptions {
  std::chrono::microseconds max_wait{std::chrono::milliseconds(5)};
  int64_t max_rows = kDefaultBatchRows;  // rows (tokens + CLS) in one pass
  size_t max_images = 32;                // images in one pass
};

class Batcher {
 public:
  // Pipeline::score: one outcome per image, named as `names` say.
  using Score = std::function<std::vector<Outcome>(std::span<const std::string> names,
                                                   std::span<const PreparedImage* const>)>;
  // `on_pass`: called after each pass with its image count and rows (for metrics).
  Batcher(Score score, BatcherOptions options,
          std::function<void(size_t images, int64_t rows)> on_pass);
  ~Batcher();  // scores what is queued, then stops

  // Queues the image; the future gives its outcome once its pass has run. `image` must stay
  // alive until then; `name` is what messages call it.
  std::future<Outcome> submit(const std::string& name, const PreparedImage& image);
  size_t queued() const;
  // From now on a pass starts as soon as the model is free, without waiting for company
  // (the server is stopping: what is queued is all there will be).
  void stop_waiting();

 private:
  struct Request {
    std::string name;
    const PreparedImage* image;
    int64_t rows;
    std::promise<Outcome> result;
    std::chrono::steady_clock::time_point arrived;
  };
  void run();
  std::vector<Request> next_pass();  // empty when stopping with nothing queued

  const Score score_;
  const BatcherOptions options_;
  const std::function<void(size_t, int64_t)> on_pass_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<Request> queue_;
  int64_t queued_rows_ = 0;
  bool stopping_ = false, no_wait_ = false;
  std::thread worker_;
};

}  // namespace musiq::cli
