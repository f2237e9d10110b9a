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

struct PreparedImage {
  int width = 0, height = 0;
  Tokens tokens;
  double decode_ms = 0, preprocess_ms = 0;
};

void PreparedImageDeleter::operator()(PreparedImage* p) const { delete p; }

namespace {

PreparedImagePtr prepare(const Image& image, const ModelConfig& config, double decode_ms) {
  PreparedImagePtr prepared(new PreparedImage);
  prepared->width = image.width;
  prepared->height = image.height;
  prepared->decode_ms = decode_ms;
  const auto start = Clock::now();
  prepared->tokens = make_tokens(image, config);
  prepared->preprocess_ms = ms_since(start);
  return prepared;
}

}  // namespace

PreparedImagePtr prepare_image_file(const std::string& path, const ModelConfig& config,
                                    const DecodeOptions& decode) {
  const auto start = Clock::now();
  const Image image = load_image_file(path, decode);
  return prepare(image, config, ms_since(start));
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

  float score(const Tokens& tokens) {
#ifdef MUSIQ_WITH_CUDA
    if (gpu_model) return gpu_model->score(tokens);
#endif
    return cpu_model->score(tokens);
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
  return score_prepared(*prepare_image_file(path, impl_->info.config, impl_->decode));
}

ScoreResult Scorer::score_image(const Image& image) {
  return score_prepared(*prepare(image, impl_->info.config, 0.0));
}

ScoreResult Scorer::score_prepared(const PreparedImage& image) {
  ScoreResult result;
  result.width = image.width;
  result.height = image.height;
  result.decode_ms = image.decode_ms;
  result.preprocess_ms = image.preprocess_ms;
  result.tokens = image.tokens.count() + 1;
  const auto start = Clock::now();
  result.score = impl_->score(image.tokens);
  result.model_ms = ms_since(start);
  return result;
}

const ModelInfo& Scorer::model() const { return impl_->info; }
const DeviceChoice& Scorer::device() const { return impl_->device; }

}  // namespace musiq
