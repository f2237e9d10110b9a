#include "api/shared_scorer.h"

#include <algorithm>
#include <climits>
#include <condition_variable>
#include <deque>
#include <system_error>
#include <thread>

#include "engine/musiq.h"  // musiq::Error, describe_exception, locate_weights

namespace musiq::api {
namespace {

Failure failure_of(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kError: return Failure::kImage;
    case ErrorKind::kOutOfMemory: return Failure::kOutOfMemory;
    case ErrorKind::kInternal: break;
  }
  return Failure::kInternal;
}

// Runs `work`, which decodes image `name`, turning whatever it throws into the outcome's
// one-line message.
template <class Work>
void capture_failure(const std::string& name, Outcome& outcome, Work&& work) {
  try {
    work();
  } catch (...) {
    ErrorReport report = describe_exception(std::current_exception(), name, "decoding");
    outcome.failure = failure_of(report.kind);
    outcome.error = std::move(report.message);
  }
}

// The pixels as an RGB image, under the same policy as decoded files.
Image image_from_pixels(const Pixels& p, const std::string& name, int64_t max_pixels) {
  const std::string size = " (" + std::to_string(p.width) + "x" + std::to_string(p.height) + ")";
  if (p.width <= 0 || p.height <= 0) throw Error(name + ": image has no pixels" + size);
  if (!p.data) throw Error(name + ": no pixel data");
  // Each side within int first: then the product cannot overflow, and Image holds it.
  if (p.width > INT_MAX || p.height > INT_MAX || p.width * p.height > max_pixels)
    throw Error(name + ": too many pixels (" + std::to_string(p.width) + "x" +
                std::to_string(p.height) + ", more than " + std::to_string(max_pixels) + ")");
  if (p.channels != 1 && p.channels != 3 && p.channels != 4)
    throw Error(name + ": " + std::to_string(p.channels) +
                " channels per pixel, expected 1 (gray), 3 (RGB) or 4 (RGBA)");
  if (p.row_stride < p.width * p.channels)
    throw Error(name + ": row stride of " + std::to_string(p.row_stride) +
                " bytes is less than a row (" + std::to_string(p.width * p.channels) +
                " bytes)");
  Image image;
  image.width = static_cast<int>(p.width);
  image.height = static_cast<int>(p.height);
  image.rgb.resize(size_t(p.width) * size_t(p.height) * 3);
  uint8_t* out = image.rgb.data();
  for (int64_t y = 0; y < p.height; ++y) {
    const uint8_t* row = p.data + y * p.row_stride;
    for (int64_t x = 0; x < p.width; ++x, out += 3) {
      const uint8_t* px = row + x * p.channels;
      out[0] = px[0];
      out[1] = p.channels == 1 ? px[0] : px[1];
      out[2] = p.channels == 1 ? px[0] : px[2];
    }
  }
  return image;
}

// A limit as callers give it: 0 means the default; below 0 is refused.
int64_t limit_or_default(int64_t value, int64_t default_value, const char* what) {
  if (value < 0) throw Error(std::string(what) + " must be positive, or 0 for the default (" +
                             std::to_string(value) + " given)");
  return value == 0 ? default_value : value;
}

}  // namespace

std::unique_ptr<SharedScorer> SharedScorer::open(const OpenOptions& given) {
  OpenOptions options = given;
  options.max_pixels = limit_or_default(given.max_pixels, DecodeOptions{}.max_pixels, "max_pixels");
  options.max_tokens = limit_or_default(given.max_tokens, DecodeOptions{}.max_tokens, "max_tokens");
  const std::string model = options.model.empty() ? "koniq" : options.model;
  ScorerParams params;
  params.weights_path = locate_weights(model, options.weights);
  if (options.weights.empty()) params.model_name = model;
  params.device = parse_device_kind(options.device);
  params.decode.max_pixels = options.max_pixels;
  params.decode.max_tokens = options.max_tokens;
  params.decode.target = options.target;
  std::unique_ptr<Scorer> scorer = Scorer::open(params);
  // As the CLI labels its records: the model's name, or the file's variant for --weights.
  std::string label = options.weights.empty() ? model : scorer->model().variant;
  return std::unique_ptr<SharedScorer>(
      new SharedScorer(std::move(scorer), std::move(label), options));
}

SharedScorer::SharedScorer(std::unique_ptr<Scorer> scorer, std::string label,
                           OpenOptions options)
    : scorer_(std::move(scorer)),
      label_(std::move(label)),
      options_(std::move(options)),
      gpu_available_(musiq::gpu_available(scorer_->device())) {}

std::string SharedScorer::device_note() const {
  const DeviceChoice& device = scorer_->device();
  return device.gpu_present && device.kind == DeviceKind::kCpu ? device.fallback_reason : "";
}

PreparedImagePtr SharedScorer::prepare(const Input& input) const {
  const ModelConfig& config = scorer_->model().config;
  const DeviceKind device = scorer_->device().kind;
  DecodeOptions decode;
  decode.max_pixels = options_.max_pixels;
  decode.max_tokens = options_.max_tokens;
  decode.target = options_.target;
  switch (input.kind) {
    case Input::Kind::kFile:
      return prepare_image_file(input.name, config, decode, device);  // refuses NUL bytes
    case Input::Kind::kEncoded:
      return prepare_encoded_image(
          std::vector<uint8_t>(input.encoded, input.encoded + input.encoded_size), input.name,
          config, decode, device);
    case Input::Kind::kPixels: {
      Image image = image_from_pixels(input.pixels, input.name, options_.max_pixels);
      const TargetSize& t = options_.target;
      check_token_budget(t.set() ? t.width : image.width, t.set() ? t.height : image.height,
                         config, options_.max_tokens, input.name);
      return prepare_image(std::move(image), config, device, t);
    }
  }
  throw Error(input.name + ": unknown input kind");
}

void SharedScorer::score_prepared(std::vector<Indexed>& images, const std::vector<Input>& inputs,
                                  std::vector<Outcome>& outcomes) {
  const std::lock_guard<std::mutex> lock(model_mutex_);
  std::vector<const PreparedImage*> packed;
  for (const auto& [index, image] : images) packed.push_back(image.get());
  std::vector<BatchItem> items;
  Failure whole = Failure::kNone;  // the call's own failure (none is per image)
  try {
    items = scorer_->score_batch(packed);
  } catch (...) {
    const ErrorReport report = describe_exception(std::current_exception());
    whole = failure_of(report.kind);
    items.assign(images.size(), {});
    for (BatchItem& item : items) item.error = report.message;
  }
  for (size_t k = 0; k < images.size(); ++k) {
    Outcome& outcome = outcomes[images[k].first];
    if (items[k].ok()) {
      outcome.result = items[k].result;
    } else {
      outcome.failure = whole != Failure::kNone ? whole : Failure::kImage;
      outcome.error = inputs[images[k].first].name + ": " + items[k].error;
    }
  }
  images.clear();
}

Outcome SharedScorer::score(const Input& input) {
  const std::vector<Input> inputs{input};
  std::vector<Outcome> outcomes(1);
  std::vector<Indexed> prepared(1);
  capture_failure(input.name, outcomes[0], [&] { prepared[0].second = prepare(input); });
  if (prepared[0].second) score_prepared(prepared, inputs, outcomes);
  return std::move(outcomes[0]);
}

std::vector<Outcome> SharedScorer::score_many(const std::vector<Input>& inputs, int threads,
                                              const std::function<bool()>& stop) {
  const size_t n = inputs.size();
  std::vector<Outcome> outcomes(n);
  const int workers = std::clamp(threads > 0 ? threads : options_.threads, 1,
                                 static_cast<int>(std::max<size_t>(n, 1)));
  // Images per packed model call: the CLI's default. The model takes what is ready, up to
  // that; decoders run ahead by at least one batch.
  const size_t batch_images = size_t(default_batch_images(scorer_->device().kind));
  const size_t lookahead = std::max(2 * static_cast<size_t>(workers), batch_images);

  // As the CLI's prefetcher: workers claim images in order, at most `lookahead` claimed
  // and not yet taken by the model; a failure goes straight to its outcome.
  std::mutex mutex;
  std::condition_variable ready, room;
  std::deque<Indexed> queue;
  size_t next = 0, released = 0;  // images claimed; images taken by the model or failed
  bool stopped = false;           // `stop` said so: workers claim nothing more
  auto work = [&] {
    for (;;) {
      size_t i;
      {
        std::unique_lock<std::mutex> lock(mutex);
        room.wait(lock, [&] { return next - released < lookahead || next == n || stopped; });
        if (next == n || stopped) return;
        i = next++;
      }
      PreparedImagePtr image;
      capture_failure(inputs[i].name, outcomes[i], [&] { image = prepare(inputs[i]); });
      {
        const std::lock_guard<std::mutex> lock(mutex);
        if (image)
          queue.emplace_back(i, std::move(image));
        else
          ++released;
      }
      ready.notify_one();
      if (!image) room.notify_one();
    }
  };
  std::vector<std::thread> pool;
  for (int t = 0; t < workers; ++t) {
    try {
      pool.emplace_back(work);
    } catch (const std::system_error&) {
      if (pool.empty()) throw;  // no thread at all; with one, the work still gets done
      break;
    }
  }

  // This thread runs the model, up to batch_images at a time, until every image is taken.
  for (;;) {
    std::vector<Indexed> batch;
    if (stop && stop()) {
      {
        const std::lock_guard<std::mutex> lock(mutex);
        stopped = true;
      }
      room.notify_all();
      break;
    }
    {
      std::unique_lock<std::mutex> lock(mutex);
      ready.wait(lock, [&] { return !queue.empty() || released == n; });
      if (queue.empty()) break;
      for (; !queue.empty() && batch.size() < batch_images; queue.pop_front())
        batch.push_back(std::move(queue.front()));
      released += batch.size();
    }
    room.notify_all();
    score_prepared(batch, inputs, outcomes);
  }
  for (std::thread& t : pool) t.join();
  if (stopped) {
    for (size_t i = 0; i < n; ++i) {
      Outcome& o = outcomes[i];
      if (o.failure != Failure::kNone || o.result.tokens > 0) continue;
      o.failure = Failure::kStopped;
      o.error = inputs[i].name + ": not scored (stopped)";
    }
  }
  return outcomes;
}

}  // namespace musiq::api
