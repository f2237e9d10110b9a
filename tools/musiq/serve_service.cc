#include "tools/musiq/serve_service.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <atomic>
#include <cmath>
#include <future>
#include <iostream>
#include <nlohmann/json.hpp>
#include <semaphore>

#include "tools/musiq/serve_batcher.h"
#include "tools/musiq/serve_connections.h"
#include "tools/musiq/serve_metrics.h"

namespace musiq::cli {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

enum class State { kLoading, kReady, kStopping };

constexpr const char* kRetryAfter = "1";
constexpr size_t kMaxParts = 64;  // images in one multipart request

std::string state_name(State s) {
  return s == State::kReady ? "ok" : s == State::kLoading ? "loading" : "stopping";
}

// Compares secrets in time independent of where they differ (and of their lengths).
bool same_secret(const std::string& given, const std::string& expected) {
  unsigned char a[SHA256_DIGEST_LENGTH], b[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(given.data()), given.size(), a);
  SHA256(reinterpret_cast<const unsigned char*>(expected.data()), expected.size(), b);
  return CRYPTO_memcmp(a, b, sizeof a) == 0;
}

// What metrics call a request's path: one of ours, or "other" (clients choose paths).
std::string route_label(const std::string& path) {
  for (const char* route : {"/v1/score", "/v1/models", "/health", "/metrics"})
    if (path == route) return route;
  return "other";
}

// The message of a status httplib sets by itself.
std::string status_text(int status) {
  switch (status) {
    case 400: return "malformed request (or multipart form)";
    case 404: return "no such route (POST /v1/score, GET /v1/models, /health, /metrics)";
    case 405: return "method not allowed";
    case 413: return "body over the limit (--max-body-bytes)";
    case 414: return "URI too long";
    case 416: return "range not satisfiable";
    default: return "HTTP status " + std::to_string(status);
  }
}

std::string lowercase(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// The media type without parameters, lower case ("multipart/form-data").
std::string media_type(const httplib::Request& req) {
  const std::string type = req.get_header_value("Content-Type");
  return lowercase(type.substr(0, type.find(';')));
}

bool accepted_body_type(const std::string& type) {
  return type.empty() || type == "application/octet-stream" || type.rfind("image/", 0) == 0 ||
         type == "multipart/form-data";
}

// The answer to an image that could not be decoded, and the metrics' kind for it: a bad
// image is the client's fault, memory the server's for now, anything else a bug.
struct DecodeFailure {
  int status;
  const char* kind;
};

DecodeFailure decode_failure(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kError: return {422, "bad_image"};
    case ErrorKind::kOutOfMemory: return {503, "out_of_memory"};
    case ErrorKind::kInternal: break;
  }
  return {500, "internal"};
}

}  // namespace

struct ScoringService::Impl {
 public:
  explicit Impl(const ServeOptions& o) : o_(o), decode_slots_(std::max(o.threads, 1)) {
    decode_.max_pixels = o.max_pixels;
    decode_.max_tokens = o.max_tokens;
  }

  void read_weights() {
    const std::string path = locate_weights(o_.model, o_.weights);
    weights_ = std::make_shared<const WeightsFile>(load_weights(path));
  }

  // Loads the model; requests before this is done get 503.
  void load() {
    PipelineParams params;
    params.models = {o_.model};
    params.weights = o_.weights;
    params.weights_read = std::move(weights_);
    params.device = parse_device_kind(o_.device);
    params.precision = parse_precision(o_.precision);
    params.decode = decode_;
    params.batch_rows = o_.batch_rows;
    params.threads = o_.threads;
    params.on_note = [](const std::string& note) { std::cerr << "musiq: " << note << std::endl; };
    pipeline_ = Pipeline::open(params);
    BatcherOptions batching;
    batching.max_wait = std::chrono::milliseconds(o_.max_wait_ms);
    batching.max_rows = o_.batch_rows;
    batching.max_images = static_cast<size_t>(o_.max_batch);
    batcher_ = std::make_unique<Batcher>(
        [this](std::span<const std::string> names, std::span<const PreparedImage* const> images) {
          return pipeline_->score(names, images);
        },
        batching, [this](size_t images, int64_t rows) { metrics_.pass(images, rows); });
    loaded_ = true;
    State loading = State::kLoading;  // a stop asked for while loading stays asked for
    state_.compare_exchange_strong(loading, State::kReady);
  }
  void stopping() {
    state_ = State::kStopping;
    if (loaded_) batcher_->stop_waiting();
  }
  // Scores what is queued; call after the connections are closed.
  void finish() { batcher_.reset(); }
  const Pipeline& pipeline() const { return *pipeline_; }
  const std::string& label() const { return pipeline_->label(); }

  void install(httplib::Server& server) {
    server.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      return refuse_early(req, res) ? httplib::Server::HandlerResponse::Handled
                                    : httplib::Server::HandlerResponse::Unhandled;
    });
    // curl sends "Expect: 100-continue" before a large body: refuse before it is sent.
    server.set_expect_100_continue_handler(
        [this](const httplib::Request& req, httplib::Response& res) {
          return refuse_early(req, res) ? res.status : 100;
        });
    server.Post("/v1/score", [this](const httplib::Request& req, httplib::Response& res) {
      const auto start = Clock::now();
      score(req, res);
      metrics_.request("/v1/score", res.status,
                       std::chrono::duration<double>(Clock::now() - start).count());
    });
    server.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
      json models = json::array();
      if (loaded_)
        models.push_back({{"name", pipeline_->label()},
                          {"variant", pipeline_->model().variant},
                          {"device", pipeline_->device().name},
                          {"precision", precision_name(pipeline_->precision())},
                          {"random_weights", pipeline_->model().random_weights},
                          {"weights", pipeline_->model().weights_path}});
      reply(res, 200, {{"models", models}});
      metrics_.request("/v1/models", res.status, 0);
    });
    server.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
      const State state = state_;
      reply(res, state == State::kReady ? 200 : 503, {{"status", state_name(state)}});
      if (state != State::kReady) res.set_header("Retry-After", kRetryAfter);
      metrics_.request("/health", res.status, 0);
    });
    server.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(metrics_.exposition(loaded_ ? batcher_->queued() : 0),
                      "text/plain; version=0.0.4");
      metrics_.request("/metrics", res.status, 0);
    });
    // Statuses httplib sets itself (400 malformed request or multipart, 404, 413 while
    // reading a chunked body) get a JSON body like ours.
    server.set_error_handler(httplib::Server::HandlerWithResponse(
        [this](const httplib::Request&, httplib::Response& res) {
          if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
          metrics_.error(res.status == 413   ? "too_large"
                         : res.status == 404 ? "not_found"
                                             : "bad_request");
          reply(res, res.status, {{"error", status_text(res.status)}});
          return httplib::Server::HandlerResponse::Handled;
        }));
    server.set_exception_handler(
        [this](const httplib::Request&, httplib::Response& res, std::exception_ptr e) {
          metrics_.error("internal");
          reply(res, 500, {{"error", describe_exception(e).message}});
        });
  }

 private:
  static void reply(httplib::Response& res, int status, const json& body) {
    res.status = status;
    res.set_content(body.dump() + "\n", "application/json");
  }

  // Refuses, from the headers alone, what will not be served: over the connection limit,
  // no API key, still loading or stopping, a body too large, a wrong content type.
  bool refuse_early(const httplib::Request& req, httplib::Response& res) {
    auto refuse = [&](int status, const std::string& kind, const std::string& message) {
      metrics_.error(kind);
      metrics_.request(route_label(req.path), status, 0);
      reply(res, status, {{"error", message}});
      res.set_header("Connection", "close");  // the body, if any, is never read
      return true;
    };
    if (ConnectionPool::refusing()) {
      res.set_header("Retry-After", kRetryAfter);
      return refuse(503, "overloaded",
                    "too many connections (at most " + std::to_string(o_.max_connections) +
                        "); retry later");
    }
    if (!o_.api_key.empty() && req.path != "/health") {
      std::string given = req.get_header_value("X-API-Key");
      const std::string auth = req.get_header_value("Authorization");
      if (lowercase(auth.substr(0, 7)) == "bearer ") given = auth.substr(7);
      if (!same_secret(given, o_.api_key)) {
        res.set_header("WWW-Authenticate", "Bearer");
        return refuse(401, "unauthorized", "missing or wrong API key");
      }
    }
    if (req.path != "/v1/score") return false;
    if (state_ != State::kReady) {
      res.set_header("Retry-After", kRetryAfter);
      return refuse(503, "unavailable", state_ == State::kLoading ? "the model is not loaded yet"
                                                                  : "the server is stopping");
    }
    // The body's size must be known before it is read: httplib would gather a chunked
    // body whole, without the limit.
    if (req.method == "POST" && !req.get_header_value("Transfer-Encoding").empty())
      return refuse(411, "bad_request",
                    "send the body with Content-Length (Transfer-Encoding is not accepted)");
    if (req.has_header("Content-Length")) {
      const std::string length = req.get_header_value("Content-Length");
      const bool too_large = length.size() > 18 || std::strtoll(length.c_str(), nullptr, 10) >
                                                       o_.max_body_bytes;
      if (too_large)
        return refuse(413, "too_large",
                      "body of " + length + " bytes is over the limit of " +
                          std::to_string(o_.max_body_bytes) + " (--max-body-bytes)");
    }
    const std::string type = media_type(req);
    if (req.method == "POST" && !accepted_body_type(type))
      return refuse(415, "unsupported_type",
                    "Content-Type " + type +
                        " not accepted: send the image's bytes as image/* or "
                        "application/octet-stream, or images as multipart/form-data");
    return false;
  }

  // One image: decoded here (at most --threads at once), scored in the next pass.
  json score_one(const std::vector<uint8_t>& bytes, const std::string& name, int& status) {
    const auto start = Clock::now();
    PreparedImagePtr image;
    try {
      decode_slots_.acquire();
      struct Release {
        std::counting_semaphore<>& slots;
        ~Release() { slots.release(); }
      } release{decode_slots_};
      image = pipeline_->prepare(ImageSource::encoded_bytes(name, bytes.data(), bytes.size()));
    } catch (...) {
      const ErrorReport report = describe_exception(std::current_exception(), name, "decoding");
      const DecodeFailure failure = decode_failure(report.kind);
      metrics_.error(failure.kind);
      status = failure.status;
      return {{"error", report.message}};
    }
    const Outcome outcome = batcher_->submit(name, *image).get();
    if (!outcome.ok()) {
      metrics_.error("scoring_failed");
      status = 500;
      return {{"error", outcome.error}};
    }
    const ScoreResult& r = outcome.result;
    metrics_.image(r.tokens);
    status = 200;
    json record = {{"score", r.score},
                   {"width", r.width},
                   {"height", r.height},
                   {"tokens", r.tokens},
                   {"model", pipeline_->label()},
                   {"device", outcome.device},
                   {"precision", precision_name(pipeline_->precision())},
                   {"batch_images", r.batch_images},
                   {"ms", std::round(std::chrono::duration<double, std::milli>(
                                         Clock::now() - start).count() * 10) / 10}};
    if (pipeline_->model().random_weights)
      record["note"] = "random demo weights (musiq-make-test-model): this score is not meaningful";
    if (!r.warning.empty()) record["warning"] = r.warning;
    return record;
  }

  void score(const httplib::Request& req, httplib::Response& res) {
    if (!req.is_multipart_form_data()) {
      int status = 0;
      const std::vector<uint8_t> bytes(req.body.begin(), req.body.end());
      if (bytes.empty()) {
        metrics_.error("bad_request");
        return reply(res, 400, {{"error", "empty body: send the image's bytes"}});
      }
      const json record = score_one(bytes, "request body", status);
      return reply(res, status, record);
    }
    if (req.files.empty()) {
      metrics_.error("bad_request");
      return reply(res, 400, {{"error", "no images in the multipart form"}});
    }
    if (req.files.size() > kMaxParts) {
      metrics_.error("too_large");
      return reply(res, 413, {{"error", std::to_string(req.files.size()) +
                                            " images in one request; at most " +
                                            std::to_string(kMaxParts)}});
    }
    // Each part decoded on its own thread and queued, so they share passes.
    std::vector<std::future<json>> parts;
    for (const auto& [field, part] : req.files) {
      const std::string name = part.filename.empty() ? field : part.filename;
      parts.push_back(std::async(std::launch::async, [this, &part, name] {
        int status = 0;
        const std::vector<uint8_t> bytes(part.content.begin(), part.content.end());
        return score_one(bytes, name, status);
      }));
    }
    json results = json::array();
    size_t i = 0;
    for (const auto& [field, part] : req.files) {
      json record = parts[i++].get();
      record["field"] = field;
      if (!part.filename.empty()) record["filename"] = part.filename;
      results.push_back(record);
    }
    reply(res, 200, {{"results", results}});
  }

  const ServeOptions o_;
  DecodeOptions decode_;
  std::counting_semaphore<> decode_slots_;
  std::shared_ptr<const WeightsFile> weights_;  // from read_weights() until load()
  std::unique_ptr<Pipeline> pipeline_;
  std::unique_ptr<Batcher> batcher_;
  ServeMetrics metrics_;
  std::atomic<State> state_{State::kLoading};
  std::atomic<bool> loaded_{false};  // pipeline_ and batcher_ are set (until finish())
};

ScoringService::ScoringService(const ServeOptions& o) : impl_(std::make_unique<Impl>(o)) {}
ScoringService::~ScoringService() = default;
void ScoringService::read_weights() { impl_->read_weights(); }
void ScoringService::load() { impl_->load(); }
void ScoringService::stopping() { impl_->stopping(); }
void ScoringService::finish() { impl_->finish(); }
const Pipeline& ScoringService::pipeline() const { return impl_->pipeline(); }
const std::string& ScoringService::label() const { return impl_->label(); }
void ScoringService::install(httplib::Server& server) { impl_->install(server); }

}  // namespace musiq::cli
