#include "tools/musiq/serve_batcher.h"

namespace musiq::cli {

Batcher::Batcher(Score score, BatcherOptions options,
                 std::function<void(size_t images, int64_t rows)> on_pass)
    : score_(std::move(score)), options_(options), on_pass_(std::move(on_pass)) {
  worker_ = std::thread([this] { run(); });
}

Batcher::~Batcher() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  worker_.join();
}

std::future<Outcome> Batcher::submit(const std::string& name, const PreparedImage& image) {
  Request request{name, &image, prepared_rows(image), {}, std::chrono::steady_clock::now()};
  std::future<Outcome> result = request.result.get_future();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    queued_rows_ += request.rows;
    queue_.push_back(std::move(request));
  }
  changed_.notify_all();
  return result;
}

size_t Batcher::queued() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return queue_.size();
}

void Batcher::stop_waiting() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    no_wait_ = true;
  }
  changed_.notify_all();
}

std::vector<Batcher::Request> Batcher::next_pass() {
  std::unique_lock<std::mutex> lock(mutex_);
  changed_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
  // Wait for company until the oldest request's deadline, unless a pass is already full.
  const auto deadline = queue_.empty() ? std::chrono::steady_clock::now()
                                       : queue_.front().arrived + options_.max_wait;
  changed_.wait_until(lock, deadline, [this] {
    return stopping_ || no_wait_ || queued_rows_ >= options_.max_rows ||
           queue_.size() >= options_.max_images;
  });
  std::vector<Request> pass;
  int64_t rows = 0;
  while (!queue_.empty() && pass.size() < options_.max_images &&
         (pass.empty() || rows + queue_.front().rows <= options_.max_rows)) {
    rows += queue_.front().rows;
    queued_rows_ -= queue_.front().rows;
    pass.push_back(std::move(queue_.front()));
    queue_.pop_front();
  }
  return pass;
}

void Batcher::run() {
  for (;;) {
    std::vector<Request> pass = next_pass();
    if (pass.empty()) return;  // stopping, and the queue is empty
    std::vector<std::string> names;
    std::vector<const PreparedImage*> images;
    int64_t rows = 0;
    for (const Request& r : pass) {
      names.push_back(r.name);
      images.push_back(r.image);
      rows += r.rows;
    }
    std::vector<Outcome> outcomes;
    try {
      outcomes = score_(names, images);
    } catch (...) {  // the device can no longer score
      const ErrorReport report = describe_exception(std::current_exception());
      outcomes.resize(pass.size());
      for (size_t i = 0; i < pass.size(); ++i) {
        outcomes[i].failure = Failure::kInternal;
        outcomes[i].error = names[i] + ": " + report.message;
      }
    }
    for (size_t i = 0; i < pass.size(); ++i) pass[i].result.set_value(std::move(outcomes[i]));
    on_pass_(pass.size(), rows);
  }
}

}  // namespace musiq::cli
