// What `musiq serve` counts, and its Prometheus text exposition (GET /metrics): requests
// by route and status, errors by kind, images and tokens scored, the queue's depth, the
// passes' sizes, and request latency. Thread-safe.
#pragma once
#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>

namespace musiq::cli {

class ServeMetrics {
 public:
  void request(const std::string& route, int status, double seconds);
  void error(const std::string& kind);
  void image(int64_t tokens);
  void pass(size_t images, int64_t rows);
  // `queue_depth`: requests waiting for the model now.
  std::string exposition(size_t queue_depth) const;

 private:
  template <size_t N>
  struct Histogram {
    std::array<int64_t, N> counts{};  // per upper bound, not cumulative
    int64_t count = 0;
    double sum = 0;
  };
  static constexpr std::array<double, 12> kLatencyBounds = {
      0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
  static constexpr std::array<double, 8> kBatchBounds = {1, 2, 4, 8, 16, 32, 64, 128};

  template <size_t N>
  static void observe(Histogram<N>& h, const std::array<double, N>& bounds, double value);
  template <size_t N>
  static void write(std::string& out, const std::string& name, const Histogram<N>& h,
                    const std::array<double, N>& bounds);

  mutable std::mutex mutex_;
  std::map<std::pair<std::string, int>, int64_t> requests_;
  std::map<std::string, int64_t> errors_;
  int64_t images_ = 0, tokens_ = 0, passes_ = 0, pass_rows_ = 0;
  Histogram<kLatencyBounds.size()> latency_;
  Histogram<kBatchBounds.size()> batch_images_;
};

}  // namespace musiq::cli
