#include "tools/musiq/serve_metrics.h"

#include <sstream>

namespace musiq::cli {
namespace {

std::string number(double value) {
  std::ostringstream s;
  s << value;
  return s.str();
}

void header(std::string& out, const std::string& name, const std::string& type,
            const std::string& help) {
  out += "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
}

}  // namespace

void ServeMetrics::request(const std::string& route, int status, double seconds) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++requests_[{route, status}];
  if (route == "/v1/score") observe(latency_, kLatencyBounds, seconds);
}

void ServeMetrics::error(const std::string& kind) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++errors_[kind];
}

void ServeMetrics::image(int64_t tokens) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++images_;
  tokens_ += tokens;
}

void ServeMetrics::pass(size_t images, int64_t rows) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++passes_;
  pass_rows_ += rows;
  observe(batch_images_, kBatchBounds, static_cast<double>(images));
}

template <size_t N>
void ServeMetrics::observe(Histogram<N>& h, const std::array<double, N>& bounds, double value) {
  ++h.count;
  h.sum += value;
  for (size_t i = 0; i < N; ++i)
    if (value <= bounds[i]) {
      ++h.counts[i];
      break;
    }
}

template <size_t N>
void ServeMetrics::write(std::string& out, const std::string& name, const Histogram<N>& h,
                         const std::array<double, N>& bounds) {
  int64_t cumulative = 0;
  for (size_t i = 0; i < N; ++i) {
    cumulative += h.counts[i];
    out += name + "_bucket{le=\"" + number(bounds[i]) + "\"} " + std::to_string(cumulative) + "\n";
  }
  out += name + "_bucket{le=\"+Inf\"} " + std::to_string(h.count) + "\n";
  out += name + "_sum " + number(h.sum) + "\n" + name + "_count " + std::to_string(h.count) + "\n";
}

std::string ServeMetrics::exposition(size_t queue_depth) const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::string out;
  header(out, "musiq_requests_total", "counter", "HTTP requests answered, by route and status.");
  for (const auto& [key, count] : requests_)
    out += "musiq_requests_total{route=\"" + key.first + "\",status=\"" +
           std::to_string(key.second) + "\"} " + std::to_string(count) + "\n";
  header(out, "musiq_errors_total", "counter", "Failed requests and images, by kind.");
  for (const auto& [kind, count] : errors_)
    out += "musiq_errors_total{kind=\"" + kind + "\"} " + std::to_string(count) + "\n";
  header(out, "musiq_images_total", "counter", "Images scored.");
  out += "musiq_images_total " + std::to_string(images_) + "\n";
  header(out, "musiq_tokens_total", "counter", "Tokens (CLS included) of the images scored.");
  out += "musiq_tokens_total " + std::to_string(tokens_) + "\n";
  header(out, "musiq_queue_depth", "gauge", "Images waiting for a forward pass.");
  out += "musiq_queue_depth " + std::to_string(queue_depth) + "\n";
  header(out, "musiq_passes_total", "counter", "Packed forward passes run.");
  out += "musiq_passes_total " + std::to_string(passes_) + "\n";
  header(out, "musiq_pass_rows_total", "counter", "Rows (tokens + CLS) of all passes.");
  out += "musiq_pass_rows_total " + std::to_string(pass_rows_) + "\n";
  header(out, "musiq_batch_images", "histogram", "Images per packed forward pass.");
  write(out, "musiq_batch_images", batch_images_, kBatchBounds);
  header(out, "musiq_request_duration_seconds", "histogram",
         "Time to answer POST /v1/score, from the body read to the response.");
  write(out, "musiq_request_duration_seconds", latency_, kLatencyBounds);
  return out;
}

}  // namespace musiq::cli
