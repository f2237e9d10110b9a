#include <chrono>

#include "engine/cpu_model.h"
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

struct Scorer::Impl {
  ModelInfo info;
  DeviceChoice device;
  DecodeOptions decode;
  std::unique_ptr<CpuModel> model;
};

Scorer::Scorer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Scorer::~Scorer() = default;

std::unique_ptr<Scorer> Scorer::open(const ScorerParams& params) {
  auto impl = std::make_unique<Impl>();
  impl->device = select_device(params.device);
  impl->decode = params.decode;
  WeightsFile file = load_weights(params.weights_path);
  impl->info = {file.path, file.variant, file.is_random(), file.config, file.parameter_count()};
  impl->model = std::make_unique<CpuModel>(prepare_model_weights(file));
  return std::unique_ptr<Scorer>(new Scorer(std::move(impl)));
}

ScoreResult Scorer::score_file(const std::string& path) {
  const auto start = Clock::now();
  const Image image = load_image_file(path, impl_->decode);
  const double decode_ms = ms_since(start);
  ScoreResult result = score_image(image);
  result.decode_ms = decode_ms;
  return result;
}

ScoreResult Scorer::score_image(const Image& image) {
  ScoreResult result;
  result.width = image.width;
  result.height = image.height;
  auto start = Clock::now();
  const Tokens tokens = make_tokens(image, impl_->info.config);
  result.preprocess_ms = ms_since(start);
  result.tokens = tokens.count() + 1;
  start = Clock::now();
  result.score = impl_->model->score(tokens);
  result.model_ms = ms_since(start);
  return result;
}

const ModelInfo& Scorer::model() const { return impl_->info; }
const DeviceChoice& Scorer::device() const { return impl_->device; }

}  // namespace musiq
