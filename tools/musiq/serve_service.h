// The HTTP side of `musiq serve`: its routes, what it refuses from the headers alone
// (connections over the limit, API key, size, content type), the records it answers with,
// and its state (loading, ready, stopping) for /health. The model runs behind a Batcher.
#pragma once
#include <memory>
#include <string>

#include <httplib.h>

#include "engine/musiq.h"
#include "engine/pipeline.h"

namespace musiq::cli {

struct ServeOptions {
  std::string model = "koniq";
  std::string weights;
  std::string device = "auto";
  std::string precision = "fp32";
  std::string host = "127.0.0.1";
  int port = 8080;
  int max_wait_ms = 5;
  int max_batch = 32;
  int64_t batch_rows = kDefaultBatchRows;
  int64_t max_pixels = DecodeOptions{}.max_pixels;
  int64_t max_tokens = DecodeOptions{}.max_tokens;
  int64_t max_body_bytes = int64_t{32} << 20;
  int max_connections = 64;
  int read_timeout_s = 10;
  int threads = 2;
  std::string api_key;
};

class ScoringService {
 public:
  explicit ScoringService(const ServeOptions& o);
  ~ScoringService();

  // Reads and checks the weights file in a child process. Call it before any thread
  // starts: a fork beside running threads can leave the child waiting on a lock that one
  // of them held (it did under AddressSanitizer's allocator).
  void read_weights();
  // Builds the model from them; until then /v1/score answers 503 and /health "loading".
  void load();
  // From now on /v1/score answers 503 and the queue stops waiting for company.
  void stopping();
  // Scores what is queued; call after the connections are closed.
  void finish();
  const Pipeline& pipeline() const;
  const std::string& label() const;
  void install(httplib::Server& server);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace musiq::cli
