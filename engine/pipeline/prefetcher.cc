#include "engine/pipeline/prefetcher.h"

#include <system_error>

namespace musiq {

Prefetcher::Prefetcher(std::vector<std::string> names, Load load, int threads, size_t lookahead,
                       size_t max_bytes)
    : names_(std::move(names)),
      load_(std::move(load)),
      lookahead_(std::max<size_t>(lookahead, 1)),
      max_bytes_(max_bytes) {
  for (int t = 0; t < std::max(threads, 1); ++t) {
    try {
      workers_.emplace_back([this] { work(); });
    } catch (const std::system_error&) {
      if (workers_.empty()) throw;
      break;
    }
  }
}

Prefetcher::~Prefetcher() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  room_.notify_all();
  for (std::thread& t : workers_) t.join();
}

void Prefetcher::work() {
  for (;;) {
    size_t index;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      // The image the consumer waits for is always claimed: while it is not, every ready
      // image has been taken and done_bytes_ is 0.
      room_.wait(lock, [this] {
        return stopping_ || next_ >= names_.size() ||
               (next_ < consumed_ + lookahead_ && done_bytes_ < max_bytes_);
      });
      if (stopping_ || next_ >= names_.size()) return;
      index = next_++;
    }
    Item item;
    try {
      item.image = load_(index);
    } catch (...) {  // whatever it is, only this image fails
      item.error = describe_exception(std::current_exception(), names_[index], "decoding");
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (item.image) done_bytes_ += prepared_image_bytes(*item.image);
      done_.emplace(index, std::move(item));
    }
    ready_.notify_all();
  }
}

Prefetcher::Item Prefetcher::take(size_t index) {
  std::unique_lock<std::mutex> lock(mutex_);
  ready_.wait(lock, [&] { return done_.count(index) > 0; });
  Item item = std::move(done_.at(index));
  done_.erase(index);
  if (item.image) done_bytes_ -= prepared_image_bytes(*item.image);
  consumed_ = index + 1;
  lock.unlock();
  room_.notify_all();
  return item;
}

}  // namespace musiq
