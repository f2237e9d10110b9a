// The connection workers of `musiq serve`, as cpp-httplib's task queue: up to
// max_connections connections are served at once; one beyond that is handed to a refusing
// worker, which reads its request and answers 503 with Retry-After (so the client learns
// why, instead of waiting in a backlog), then closes it.
#pragma once
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include <httplib.h>

namespace musiq::cli {

class ConnectionPool : public httplib::TaskQueue {
 public:
  ConnectionPool(size_t max_connections, size_t refusing_workers);
  ~ConnectionPool() override;

  void enqueue(std::function<void()> connection) override;
  void shutdown() override;  // serves what is queued, then joins the workers

  // True on a worker whose connection is over the limit: its request gets 503.
  static bool refusing();

 private:
  void work(bool refuser);

  const size_t max_connections_;
  std::mutex mutex_;
  std::condition_variable queued_;
  std::deque<std::function<void()>> served_, refused_;
  size_t active_ = 0;  // served connections queued or running
  bool shutdown_ = false;
  std::vector<std::thread> workers_;
};

}  // namespace musiq::cli
