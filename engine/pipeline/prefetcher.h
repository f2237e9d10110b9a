// Decodes and preprocesses images on worker threads, a bounded distance ahead of the
// consumer, and hands them out in input order: the model never waits on JPEG decoding.
#pragma once
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/error.h"
#include "engine/musiq.h"

namespace musiq {

class Prefetcher {
 public:
  struct Item {
    PreparedImagePtr image;  // null when the image failed
    ErrorReport error;       // why, when it failed
  };

  // Prepares image `index` (prepare_image_file or prepare_encoded_image); throws on failure.
  // Called on the workers, for each index once, in increasing order of the start.
  using Load = std::function<PreparedImagePtr(size_t index)>;

  // `names`: what messages call each image. Workers run at most `lookahead` images ahead of
  // the consumer, and start no new image while the ready ones hold `max_bytes` or more.
  // When not every worker can be started, fewer do the work (none: std::system_error).
  Prefetcher(std::vector<std::string> names, Load load, int threads, size_t lookahead,
             size_t max_bytes);
  ~Prefetcher();  // stops the workers

  Item take(size_t index);  // blocks until image `index` is ready; call in order

 private:
  void work();

  const std::vector<std::string> names_;
  const Load load_;
  const size_t lookahead_;
  const size_t max_bytes_;
  std::mutex mutex_;
  std::condition_variable ready_, room_;
  std::map<size_t, Item> done_;
  size_t done_bytes_ = 0;  // held by done_
  size_t next_ = 0, consumed_ = 0;
  bool stopping_ = false;
  std::vector<std::thread> workers_;
};

}  // namespace musiq
