#include "tools/musiq/serve_connections.h"

namespace musiq::cli {
namespace {

thread_local bool t_refusing = false;

}  // namespace

ConnectionPool::ConnectionPool(size_t max_connections, size_t refusing_workers)
    : max_connections_(max_connections) {
  for (size_t i = 0; i < max_connections; ++i) workers_.emplace_back([this] { work(false); });
  for (size_t i = 0; i < refusing_workers; ++i) workers_.emplace_back([this] { work(true); });
}

ConnectionPool::~ConnectionPool() { shutdown(); }

bool ConnectionPool::refusing() { return t_refusing; }

void ConnectionPool::enqueue(std::function<void()> connection) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (active_ < max_connections_) {
      ++active_;
      served_.push_back(std::move(connection));
    } else {
      refused_.push_back(std::move(connection));
    }
  }
  queued_.notify_all();
}

void ConnectionPool::shutdown() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (shutdown_ && workers_.empty()) return;
    shutdown_ = true;
  }
  queued_.notify_all();
  for (std::thread& t : workers_) t.join();
  workers_.clear();
}

void ConnectionPool::work(bool refuser) {
  t_refusing = refuser;
  std::deque<std::function<void()>>& queue = refuser ? refused_ : served_;
  for (;;) {
    std::function<void()> connection;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      queued_.wait(lock, [&] { return shutdown_ || !queue.empty(); });
      if (queue.empty()) return;  // shutting down, nothing left
      connection = std::move(queue.front());
      queue.pop_front();
    }
    connection();
    if (!refuser) {
      std::lock_guard<std::mutex> lock(mutex_);
      --active_;
    }
  }
}

}  // namespace musiq::cli
