#include <chrono>
#include <variant>

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
  // Tokens for a CPU scorer; the decoded pixels for a GPU scorer, which preprocesses them.
  std::variant<Tokens, Image> input;
  double decode_ms = 0, preprocess_ms = 0;
  std::string warning;
};

void PreparedImageDeleter::operator()(PreparedImage* p) const { delete p; }

namespace {

// `decode` plus the token budget, checked from the header before the pixels are decoded:
// an image's cost grows with its tokens (attention with their square).
DecodeOptions with_token_budget(const DecodeOptions& decode, const ModelConfig& config,
                                const std::string& name) {
  DecodeOptions checked = decode;
  checked.check_size = [decode, config, name](int width, int height) {
    if (decode.check_size) decode.check_size(width, height);
    const int64_t tokens = plan_tokens(height, width, config).count() + 1;
    if (tokens > decode.max_tokens)
      throw Error(name + ": too costly: " + std::to_string(width) + "x" + std::to_string(height) +
                  " makes " + std::to_string(tokens) + " tokens, more than the limit of " +
                  std::to_string(decode.max_tokens) + " (raise it with --max-tokens)");
  };
  return checked;
}

// The decoded image prepared, its decode time counted from `start`.
PreparedImagePtr prepare_decoded(Clock::time_point start, Image image, const ModelConfig& config,
                                 DeviceKind device) {
  const double decode_ms = ms_since(start);
  PreparedImagePtr prepared = prepare_image(std::move(image), config, device);
  prepared->decode_ms = decode_ms;
  return prepared;
}

}  // namespace

PreparedImagePtr prepare_image_file(const std::string& path, const ModelConfig& config,
                                    const DecodeOptions& decode, DeviceKind device) {
  const auto start = Clock::now();
  return prepare_decoded(start, load_image_file(path, with_token_budget(decode, config, path)),
                         config, device);
}

PreparedImagePtr prepare_encoded_image(const std::vector<uint8_t>& bytes, const std::string& name,
                                       const ModelConfig& config, const DecodeOptions& decode,
                                       DeviceKind device) {
  const auto start = Clock::now();
  // What load_image_file does with a file's bytes: the same pixels, the same budget.
  return prepare_decoded(start, decode_image(bytes, name, with_token_budget(decode, config, name)),
                         config, device);
}

PreparedImagePtr prepare_image(Image image, const ModelConfig& config, DeviceKind device) {
  PreparedImagePtr prepared(new PreparedImage);
  prepared->width = image.width;
  prepared->height = image.height;
  prepared->warning = std::move(image.warning);
  if (device == DeviceKind::kCuda) {
    prepared->input = std::move(image);
  } else {
    const auto tokens_start = Clock::now();
    prepared->input = make_tokens(image, config);
    prepared->preprocess_ms = ms_since(tokens_start);
  }
  return prepared;
}

struct Scorer::Impl {
  ModelInfo info;
  DeviceChoice device;
  DecodeOptions decode;
  // Exactly one of the two is set, by the device chosen.
  std::unique_ptr<CpuModel> cpu_model;
#ifdef MUSIQ_WITH_CUDA
  std::unique_ptr<GpuModel> gpu_model;

  // The GPU's own stage times (CUDA events); model_ms is the rest of the call's wall time.
  void record_gpu_run(Clock::time_point start, ScoreResult& result) const {
    const GpuRunStats run = gpu_model->last_run_stats();
    result.tokens = run.tokens;
    result.upload_ms = run.upload_ms;
    result.preprocess_ms += run.preprocess_ms;
    result.model_ms = ms_since(start) - run.upload_ms - run.preprocess_ms;
  }
#endif

  void score_tokens(const Tokens& tokens, ScoreResult& result) {
    const auto start = Clock::now();
#ifdef MUSIQ_WITH_CUDA
    if (gpu_model) {
      result.score = gpu_model->score(tokens);
      record_gpu_run(start, result);
      return;
    }
#endif
    result.score = cpu_model->score(tokens);
    result.tokens = tokens.count() + 1;
    result.model_ms = ms_since(start);
  }

  // On the GPU the pixels are preprocessed there; for the CPU, here.
  void score_pixels(const Image& image, ScoreResult& result) {
#ifdef MUSIQ_WITH_CUDA
    if (gpu_model) {
      const auto start = Clock::now();
      result.score = gpu_model->score_image(image);
      record_gpu_run(start, result);
      return;
    }
#endif
    const auto start = Clock::now();
    const Tokens tokens = make_tokens(image, info.config);
    result.preprocess_ms += ms_since(start);
    score_tokens(tokens, result);
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
  ScoreResult result;
  result.width = image.width;
  result.height = image.height;
  result.warning = image.warning;
  impl_->score_pixels(image, result);
  return result;
}

ScoreResult Scorer::score_prepared(const PreparedImage& image) {
  ScoreResult result;
  result.width = image.width;
  result.height = image.height;
  result.decode_ms = image.decode_ms;
  result.preprocess_ms = image.preprocess_ms;
  result.warning = image.warning;
  if (const Tokens* tokens = std::get_if<Tokens>(&image.input))
    impl_->score_tokens(*tokens, result);
  else
    impl_->score_pixels(std::get<Image>(image.input), result);
  return result;
}

const ModelInfo& Scorer::model() const { return impl_->info; }
const DeviceChoice& Scorer::device() const { return impl_->device; }

}  // namespace musiq
