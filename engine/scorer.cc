#include <algorithm>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstdint>
#include <deque>
#include <variant>

#include "engine/model/cpu_model.h"
#include "base/error.h"
#ifdef MUSIQ_HAS_CUDA
#include "engine/model/gpu_model.h"  // no CUDA types: safe in this plain C++ file
#include "engine/model/gpu_self_check.h"
#endif
#include "engine/musiq.h"
#include "engine/model/packed_batch.h"
#include "engine/preprocess/preprocess.h"
#include "engine/preprocess/target_size.h"
#include "weights/weights.h"

namespace musiq {
namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// "" for a finite score, else the one-line reason it is refused.
std::string non_finite_error(float score) {
  if (std::isfinite(score)) return "";
  return std::string("the model gave a non-finite score (") +
         (std::isnan(score) ? "nan" : score > 0 ? "inf" : "-inf") + "); are the weights broken?";
}

}  // namespace

struct PreparedImage {
  int width = 0, height = 0;                // as decoded
  int scored_width = 0, scored_height = 0;  // as the model takes it
  int64_t rows = 0;  // tokens + CLS
  // Tokens for a CPU scorer; the decoded pixels for a GPU scorer, which preprocesses them.
  std::variant<Tokens, Image> input;
  double decode_ms = 0, preprocess_ms = 0;
  std::string warning;
};

void PreparedImageDeleter::operator()(PreparedImage* p) const { delete p; }

size_t prepared_image_bytes(const PreparedImage& image) {
  if (const Tokens* t = std::get_if<Tokens>(&image.input))
    return t->patches.size() * sizeof(float) +
           (t->spatial.size() + t->scale_id.size()) * sizeof(int32_t);
  return std::get<Image>(image.input).rgb.size();
}

void check_token_budget(int width, int height, const ModelConfig& config, int64_t max_tokens,
                        const std::string& name) {
  const int64_t tokens = plan_tokens(height, width, config).count() + 1;
  if (tokens > max_tokens)
    throw Error(name + ": too costly: " + std::to_string(width) + "x" + std::to_string(height) +
                " makes " + std::to_string(tokens) + " tokens, more than the limit of " +
                std::to_string(max_tokens) + " (raise it with --max-tokens)");
}

namespace {

// `decode` plus the token budget (of the target size, when one is set), checked from the
// header before the pixels are decoded.
DecodeOptions with_token_budget(const DecodeOptions& decode, const ModelConfig& config,
                                const std::string& name) {
  check_target_size(decode.target);
  DecodeOptions checked = decode;
  checked.check_size = [decode, config, name](int width, int height) {
    if (decode.check_size) decode.check_size(width, height);
    const TargetSize& t = decode.target;
    check_token_budget(t.set() ? t.width : width, t.set() ? t.height : height, config,
                       decode.max_tokens, name);
  };
  return checked;
}

// The decoded image prepared, its decode time counted from `start`.
PreparedImagePtr prepare_decoded(Clock::time_point start, Image image, const ModelConfig& config,
                                 const DecodeOptions& decode, DeviceKind device) {
  const double decode_ms = ms_since(start);
  PreparedImagePtr prepared = prepare_image(std::move(image), config, device, decode.target);
  prepared->decode_ms = decode_ms;
  return prepared;
}

}  // namespace

PreparedImagePtr prepare_image_file(const std::string& path, const ModelConfig& config,
                                    const DecodeOptions& decode, DeviceKind device) {
  const auto start = Clock::now();
  return prepare_decoded(start, load_image_file(path, with_token_budget(decode, config, path)),
                         config, decode, device);
}

PreparedImagePtr prepare_encoded_image(const std::vector<uint8_t>& bytes, const std::string& name,
                                       const ModelConfig& config, const DecodeOptions& decode,
                                       DeviceKind device) {
  const auto start = Clock::now();
  // What load_image_file does with a file's bytes: the same pixels, the same budget.
  return prepare_decoded(start, decode_image(bytes, name, with_token_budget(decode, config, name)),
                         config, decode, device);
}

PreparedImagePtr prepare_image(Image image, const ModelConfig& config, DeviceKind device,
                               TargetSize target) {
  check_image(image);
  check_target_size(target);
  PreparedImagePtr prepared(new PreparedImage);
  prepared->width = image.width;
  prepared->height = image.height;
  const auto start = Clock::now();
  if (target.set()) image = resize_to_target(image, target);
  prepared->scored_width = image.width;
  prepared->scored_height = image.height;
  prepared->warning = std::move(image.warning);
  prepared->rows = plan_tokens(image.height, image.width, config).count() + 1;
  if (device == DeviceKind::kCuda) {
    prepared->input = std::move(image);
  } else {
    prepared->input = make_tokens(image, config);
  }
  prepared->preprocess_ms = ms_since(start);
  return prepared;
}

int64_t prepared_rows(const PreparedImage& image) { return image.rows; }
const std::string& prepared_warning(const PreparedImage& image) { return image.warning; }

struct Scorer::Impl {
  ModelInfo info;
  DeviceChoice device;
  Precision precision = Precision::kFp32;
  DecodeOptions decode;
  int64_t batch_rows = kDefaultBatchRows;
  // Exactly one of the two is set, by the device chosen.
  std::unique_ptr<CpuModel> cpu_model;
#ifdef MUSIQ_HAS_CUDA
  std::unique_ptr<GpuModel> gpu_model;
#endif

  // One image as the model takes it: tokens, or (GPU only) the decoded image.
  struct Input {
    const Tokens* tokens = nullptr;
    const Image* image = nullptr;
    int64_t rows = 0;  // tokens + CLS
  };

  // Readies one image for the device: the GPU preprocesses it there, the CPU here (the
  // tokens go to `made`).
  Input input_for(const Image& image, std::deque<Tokens>& made, ScoreResult& result) {
#ifdef MUSIQ_HAS_CUDA
    if (gpu_model) {
      check_image(image);
      return {nullptr, &image, plan_tokens(image.height, image.width, info.config).count() + 1};
    }
#endif
    const auto start = Clock::now();
    made.push_back(make_tokens(image, info.config));
    result.preprocess_ms += ms_since(start);
    return {&made.back(), nullptr, made.back().count() + 1};
  }
  Input input_for(const PreparedImage& p, std::deque<Tokens>& made, ScoreResult& result) {
    if (const Tokens* tokens = std::get_if<Tokens>(&p.input))
      return {tokens, nullptr, tokens->count() + 1};
    return input_for(std::get<Image>(p.input), made, result);
  }

  // One packed forward pass over `inputs`: their scores, tokens and shares of the time.
  void run(std::span<const Input> inputs, std::span<ScoreResult*> results) {
    const auto start = Clock::now();
    std::vector<float> scores;
    double upload_ms = 0, device_preprocess_ms = 0;
#ifdef MUSIQ_HAS_CUDA
    if (gpu_model) {
      std::vector<GpuInput> gpu_inputs;
      for (const Input& in : inputs)
        gpu_inputs.push_back(in.tokens ? GpuInput(in.tokens) : GpuInput(in.image));
      scores = gpu_model->score_batch(gpu_inputs);
      const GpuRunStats run = gpu_model->last_run_stats();
      upload_ms = run.upload_ms;
      device_preprocess_ms = run.preprocess_ms;
    }
#endif
    if (cpu_model) {
      std::vector<const Tokens*> tokens;
      for (const Input& in : inputs) tokens.push_back(in.tokens);
      scores = cpu_model->score_batch(tokens);
    }
    const double model_ms = ms_since(start) - upload_ms - device_preprocess_ms;
    int64_t rows = 0;
    for (const Input& in : inputs) rows += in.rows;
    for (size_t i = 0; i < inputs.size(); ++i) {
      ScoreResult& r = *results[i];
      const double share = double(inputs[i].rows) / double(rows);
      r.score = scores[i];
      r.tokens = inputs[i].rows;
      r.batch_images = static_cast<int>(inputs.size());
      r.upload_ms = upload_ms * share;
      r.preprocess_ms += device_preprocess_ms * share;
      r.model_ms = model_ms * share;
    }
  }
};

namespace {

// Throws the one-line error for a precision `device` does not compute.
void check_precision_on(DeviceKind device, Precision precision) {
  const std::vector<Precision> can = precisions_on(device);
  if (std::ranges::find(can, precision) != can.end()) return;
  std::vector<std::string> names;
  for (Precision p : can) names.push_back(precision_name(p));
  throw Error("precision " + precision_name(precision) + " is not available on the " +
              (device == DeviceKind::kCpu ? "CPU" : "GPU") + " (it computes " +
              alternatives(names) + ")");
}

}  // namespace

Scorer::Scorer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Scorer::~Scorer() = default;

std::unique_ptr<Scorer> Scorer::open(const ScorerParams& params) {
  if (params.batch_rows <= 0) throw Error("batch_rows must be positive");
  check_target_size(params.decode.target);
  auto impl = std::make_unique<Impl>();
  impl->device = select_device(params.device);
  impl->decode = params.decode;
  impl->batch_rows = params.batch_rows;
  impl->precision = params.precision;
  const std::shared_ptr<const WeightsFile> read =
      params.weights ? params.weights
                     : std::make_shared<const WeightsFile>(load_weights(params.weights_path));
  const WeightsFile& file = *read;
  if (!params.model_name.empty() && file.variant != params.model_name && !file.is_random())
    throw Error(file.path + ": holds the " + file.variant + " model, not " + params.model_name);
  impl->info = {file.path, file.variant, file.is_random(), file.config, file.parameter_count()};
#ifdef MUSIQ_HAS_CUDA
  if (impl->device.kind == DeviceKind::kCuda) {
    // --device cuda: any failure is the user's answer. auto: the GPU must load the model
    // and pass its self-check, else the CPU runs and says why.
    try {
      check_precision_on(DeviceKind::kCuda, params.precision);
      impl->gpu_model = std::make_unique<GpuModel>(prepare_model_weights(file), params.precision);
      if (params.device == DeviceKind::kAuto)
        check_gpu_against_cpu(*impl->gpu_model, file, params.precision);
      return std::unique_ptr<Scorer>(new Scorer(std::move(impl)));
    } catch (const Error& e) {
      if (params.device != DeviceKind::kAuto) throw;
      impl->gpu_model.reset();
      impl->device = cpu_device(e.what(), true);
    }
  }
#endif
  // select_device never returns kCuda in a build without the CUDA path.
  check_precision_on(DeviceKind::kCpu, params.precision);
  impl->cpu_model = std::make_unique<CpuModel>(prepare_model_weights(file), params.precision);
  return std::unique_ptr<Scorer>(new Scorer(std::move(impl)));
}

ScoreResult Scorer::score_file(const std::string& path) {
  return score_prepared(
      *prepare_image_file(path, impl_->info.config, impl_->decode, impl_->device.kind));
}

ScoreResult Scorer::score_image(const Image& image) {
  ScoreResult result;
  result.width = result.scored_width = image.width;
  result.height = result.scored_height = image.height;
  result.warning = image.warning;
  std::deque<Tokens> made;
  const Impl::Input input = impl_->input_for(image, made, result);
  ScoreResult* out[] = {&result};
  impl_->run({&input, 1}, out);
  if (const std::string error = non_finite_error(result.score); !error.empty()) throw Error(error);
  return result;
}

ScoreResult Scorer::score_prepared(const PreparedImage& image) {
  const PreparedImage* one[] = {&image};
  BatchItem item = std::move(score_batch(one)[0]);
  if (!item.ok()) throw Error(item.error);
  return item.result;
}

std::vector<BatchItem> Scorer::score_batch(std::span<const PreparedImage* const> images) {
  Impl& m = *impl_;
  std::vector<BatchItem> items(images.size());
  std::deque<Tokens> made;
  std::vector<Impl::Input> inputs;
  std::vector<ScoreResult*> results;
  std::vector<size_t> item_of;  // per input
  for (size_t i = 0; i < images.size(); ++i) {
    const PreparedImage& p = *images[i];
    ScoreResult& r = items[i].result;
    r.width = p.width;
    r.height = p.height;
    r.scored_width = p.scored_width;
    r.scored_height = p.scored_height;
    r.decode_ms = p.decode_ms;
    r.preprocess_ms = p.preprocess_ms;
    r.warning = p.warning;
    try {
      inputs.push_back(m.input_for(p, made, r));
      results.push_back(&r);
      item_of.push_back(i);
    } catch (const Error& e) {
      items[i].error = e.what();
    }
  }
  std::vector<int64_t> tokens;
  for (const Impl::Input& in : inputs) tokens.push_back(in.rows - 1);
  for (const auto& [begin, end] : split_batches(tokens, INT32_MAX, m.batch_rows)) {
    const std::span<const Impl::Input> run(inputs.data() + begin, end - begin);
    const std::span<ScoreResult*> out(results.data() + begin, end - begin);
    try {
      m.run(run, out);
    } catch (const Error&) {
      // Find which image fails: each alone, so the others still get their scores.
      for (size_t k = 0; k < run.size(); ++k) {
        try {
          m.run(run.subspan(k, 1), out.subspan(k, 1));
        } catch (const Error& e) {
          items[item_of[begin + k]].error = e.what();
        }
      }
    }
  }
  for (BatchItem& item : items) {
    if (!item.ok()) continue;
    item.error = non_finite_error(item.result.score);
    item.non_finite = !item.ok();
  }
  return items;
}

const ModelInfo& Scorer::model() const { return impl_->info; }
Precision Scorer::precision() const { return impl_->precision; }

const DeviceChoice& Scorer::device() const { return impl_->device; }

}  // namespace musiq
