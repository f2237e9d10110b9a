#include <chrono>

#include "engine/cpu_model.h"
#include "engine/error.h"
#ifdef MUSIQ_WITH_CUDA
#include "engine/gpu_model.h"  // no CUDA types: safe in this plain C++ file
#include "engine/gpu_self_check.h"
#endif
#include "engine/musiq.h"
#include "engine/preprocess.h"
#include "engine/weights.h"

namespace musiq {
namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

}  // namespace

// Prepared for the CPU: the tokens. For the GPU: the decoded image, preprocessed there.
struct PreparedImage {
  int width = 0, height = 0;
  bool has_tokens = false;
  Tokens tokens;
  Image image;
  double decode_ms = 0, preprocess_ms = 0;
};

void PreparedImageDeleter::operator()(PreparedImage* p) const { delete p; }

namespace {

PreparedImagePtr prepare(Image image, const ModelConfig& config, double decode_ms,
                         DeviceKind device) {
  PreparedImagePtr prepared(new PreparedImage);
  prepared->width = image.width;
  prepared->height = image.height;
  prepared->decode_ms = decode_ms;
  if (device == DeviceKind::kCuda) {
    prepared->image = std::move(image);
    return prepared;
  }
  const auto start = Clock::now();
  prepared->tokens = make_tokens(image, config);
  prepared->has_tokens = true;
  prepared->preprocess_ms = ms_since(start);
  return prepared;
}

}  // namespace

PreparedImagePtr prepare_image_file(const std::string& path, const ModelConfig& config,
                                    const DecodeOptions& decode, DeviceKind device) {
  const auto start = Clock::now();
  Image image = load_image_file(path, decode);
  return prepare(std::move(image), config, ms_since(start), device);
}

struct Scorer::Impl {
  ModelInfo info;
  DeviceChoice device;
  DecodeOptions decode;
  // Exactly one of the two is set, by the device chosen.
  std::unique_ptr<CpuModel> cpu_model;
#ifdef MUSIQ_WITH_CUDA
  std::unique_ptr<GpuModel> gpu_model;
#endif

  // Scores `image` into `result`: from its tokens when it has them, else from its pixels
  // (preprocessed on the GPU, or here for the CPU).
  void score(const PreparedImage& image, ScoreResult& result) {
    const auto start = Clock::now();
#ifdef MUSIQ_WITH_CUDA
    if (gpu_model) {
      result.tokens = 1 + (image.has_tokens ? image.tokens.count()
                                            : plan_tokens(image.height, image.width, info.config)
                                                  .count());
      result.score = image.has_tokens ? gpu_model->score(image.tokens)
                                      : gpu_model->score_image(image.image);
      const GpuStageTimes t = gpu_model->last_stage_times();
      result.upload_ms = t.upload_ms;
      result.preprocess_ms += t.preprocess_ms;
      result.model_ms = ms_since(start) - t.upload_ms - t.preprocess_ms;
      return;
    }
#endif
    if (image.has_tokens) {
      result.tokens = image.tokens.count() + 1;
      result.score = cpu_model->score(image.tokens);
    } else {
      const Tokens tokens = make_tokens(image.image, info.config);
      result.preprocess_ms += ms_since(start);
      result.tokens = tokens.count() + 1;
      result.score = cpu_model->score(tokens);
    }
    result.model_ms = ms_since(start) - (result.preprocess_ms - image.preprocess_ms);
  }
};

Scorer::Scorer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Scorer::~Scorer() = default;

std::unique_ptr<Scorer> Scorer::open(const ScorerParams& params) {
  auto impl = std::make_unique<Impl>();
  impl->device = select_device(params.device);
  impl->decode = params.decode;
  WeightsFile file = load_weights(params.weights_path);
  impl->info = {file.path, file.variant, file.is_random(), file.config, file.parameter_count()};
#ifdef MUSIQ_WITH_CUDA
  if (impl->device.kind == DeviceKind::kCuda) {
    // --device cuda: any failure is the user's answer. auto: the GPU must load the model
    // and pass its self-check, else the CPU runs and says why.
    try {
      impl->gpu_model = std::make_unique<GpuModel>(prepare_model_weights(file));
      if (params.device == DeviceKind::kAuto) check_gpu_against_cpu(*impl->gpu_model, file);
      return std::unique_ptr<Scorer>(new Scorer(std::move(impl)));
    } catch (const Error& e) {
      if (params.device != DeviceKind::kAuto) throw;
      impl->gpu_model.reset();
      impl->device = cpu_device(e.what(), true);
    }
  }
#endif
  // select_device never returns kCuda in a build without the CUDA path.
  impl->cpu_model = std::make_unique<CpuModel>(prepare_model_weights(file));
  return std::unique_ptr<Scorer>(new Scorer(std::move(impl)));
}

ScoreResult Scorer::score_file(const std::string& path) {
  return score_prepared(
      *prepare_image_file(path, impl_->info.config, impl_->decode, impl_->device.kind));
}

ScoreResult Scorer::score_image(const Image& image) {
  return score_prepared(*prepare(image, impl_->info.config, 0.0, impl_->device.kind));
}

ScoreResult Scorer::score_prepared(const PreparedImage& image) {
  ScoreResult result;
  result.width = image.width;
  result.height = image.height;
  result.decode_ms = image.decode_ms;
  result.preprocess_ms = image.preprocess_ms;
  impl_->score(image, result);
  return result;
}

const ModelInfo& Scorer::model() const { return impl_->info; }
const DeviceChoice& Scorer::device() const { return impl_->device; }

}  // namespace musiq
