#include "engine/pipeline.h"

#include <algorithm>
#include <atomic>
#include <mutex>

#include "base/error.h"
#include "engine/pipeline/image_source.h"
#include "engine/pipeline/model_runner.h"
#include "engine/pipeline/prefetcher.h"

namespace musiq {
namespace {

// Prepared images run() holds in one pass, and again prepared ahead of it, so memory stays
// bounded whatever the batch size and the images' sizes: tokens take 12 KB each on the CPU,
// 10,900 of them fit (a 1024x768 photo makes 919); a larger image (a 12-MP photo: 146 MB)
// goes alone.
constexpr size_t kHeldBytes = size_t{128} << 20;

bool same_preprocessing(const ModelConfig& a, const ModelConfig& b) {
  return a.patch_size == b.patch_size && a.hse_grid_size == b.hse_grid_size &&
         a.longer_side_lengths == b.longer_side_lengths &&
         a.max_seq_len_from_original_res == b.max_seq_len_from_original_res;
}

Outcome failed(Failure failure, std::string error) {
  Outcome o;
  o.failure = failure;
  o.error = std::move(error);
  return o;
}

}  // namespace

struct Pipeline::Impl {
  PipelineParams params;
  std::vector<std::string> labels;
  std::vector<ModelInfo> infos;  // as opened: a fallback to the CPU keeps the model
  std::mutex model_mutex;        // one model call at a time: each uses every core, or the GPU
  std::vector<ModelRunner> runners;  // guarded by model_mutex
  // The first model's device and why it left the GPU, if it did: readable while a model
  // call runs (a server's status page must not wait for a pass).
  mutable std::mutex device_mutex;
  DeviceChoice device;
  std::string device_note;
  // Where new images are prepared: the device scoring now.
  std::atomic<DeviceKind> prepare_device{DeviceKind::kCpu};
  size_t batch_images = 1;

  // After a model call (under model_mutex): the device it left the first model on.
  void note_device() {
    const ModelRunner& runner = runners.front();
    const std::lock_guard<std::mutex> lock(device_mutex);
    device = runner.backend().device();
    if (!runner.fallback_reason().empty())
      device_note = runner.fallback_reason();
    else if (device.gpu_present && device.kind == DeviceKind::kCpu)
      device_note = device.fallback_reason;
    prepare_device = device.kind;
  }

  // The strict refusal of a prepared image, or nullopt.
  std::optional<Outcome> refusal(const std::string& name, const PreparedImage& image) const {
    const std::string& warning = prepared_warning(image);
    if (!params.strict || warning.empty()) return std::nullopt;
    return failed(Failure::kImage,
                  name + ": decoder warning: " + warning + " (refused by strict mode)");
  }
};

Pipeline::Pipeline(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {
  gpu_available_ = musiq::gpu_available(impl_->runners.front().backend().device());
}
Pipeline::~Pipeline() = default;

std::unique_ptr<Pipeline> Pipeline::open(const PipelineParams& params) {
  if (params.models.empty()) throw Error("no model named");
  const bool by_file = !params.weights.empty() || params.weights_read;
  if (by_file && params.models.size() > 1)
    throw Error("a weights file holds one model: name a single model with it");
  if (params.batch_images < 0) throw Error("images per pass must be positive");
  auto impl = std::make_unique<Impl>();
  impl->params = params;
  for (const std::string& name : params.models) {
    ScorerParams scorer;
    scorer.weights_path =
        params.weights_read ? params.weights_read->path : locate_weights(name, params.weights);
    // Kept, so that a fallback to the CPU reopens without reading the file again.
    scorer.weights = params.weights_read;
    if (params.weights.empty() || params.check_variant) scorer.model_name = name;
    scorer.device = params.device;
    scorer.precision = params.precision;
    scorer.decode = params.decode;
    scorer.batch_rows = params.batch_rows;
    std::unique_ptr<Scorer> opened = Scorer::open(scorer);
    impl->labels.push_back(params.weights.empty() ? name : opened->model().variant);
    impl->infos.push_back(opened->model());
    if (!same_preprocessing(impl->infos.front().config, impl->infos.back().config))
      throw Error(scorer.weights_path + ": preprocessing settings differ from the other models'");
    auto open_on_cpu = [scorer]() mutable {
      scorer.device = DeviceKind::kCpu;
      return backend_for(Scorer::open(scorer));
    };
    impl->runners.emplace_back(backend_for(std::move(opened)), params.device, open_on_cpu,
                               params.on_note);
  }
  impl->note_device();
  const DeviceChoice& device = impl->device;
  impl->batch_images = size_t(params.batch_images > 0 ? params.batch_images
                                                      : default_batch_images(device.kind));
  // Worth a note only when a GPU is there and still not used.
  if (!impl->device_note.empty() && params.on_note)
    params.on_note("using the CPU: " + impl->device_note);
  return std::unique_ptr<Pipeline>(new Pipeline(std::move(impl)));
}

size_t Pipeline::model_count() const { return impl_->infos.size(); }
const ModelInfo& Pipeline::model(size_t index) const { return impl_->infos.at(index); }
const std::string& Pipeline::label(size_t index) const { return impl_->labels.at(index); }

DeviceChoice Pipeline::device() const {
  const std::lock_guard<std::mutex> lock(impl_->device_mutex);
  return impl_->device;
}

Precision Pipeline::precision() const { return impl_->params.precision; }

std::string Pipeline::device_note() const {
  const std::lock_guard<std::mutex> lock(impl_->device_mutex);
  return impl_->device_note;
}

PreparedImagePtr Pipeline::prepare(const ImageSource& source) const {
  return prepare_source(source, impl_->infos.front().config, impl_->params.decode,
                        impl_->prepare_device);
}

Outcome Pipeline::score(const ImageSource& source, size_t index) {
  PreparedImagePtr image;
  try {
    image = prepare(source);
  } catch (...) {
    const ErrorReport report = describe_exception(std::current_exception(), source.name, "decoding");
    return failed(failure_of(report.kind), report.message);
  }
  const PreparedImage* one[] = {image.get()};
  return std::move(score({&source.name, 1}, one, index)[0]);
}

std::vector<Outcome> Pipeline::score(std::span<const std::string> names,
                                     std::span<const PreparedImage* const> images, size_t index) {
  Impl& m = *impl_;
  std::vector<Outcome> outcomes(images.size());
  std::vector<std::string> accepted_names;
  std::vector<const PreparedImage*> accepted;
  std::vector<size_t> outcome_of;  // per accepted image
  for (size_t i = 0; i < images.size(); ++i) {
    if (std::optional<Outcome> refused = m.refusal(names[i], *images[i])) {
      outcomes[i] = std::move(*refused);
      continue;
    }
    accepted_names.push_back(names[i]);
    accepted.push_back(images[i]);
    outcome_of.push_back(i);
  }
  if (accepted.empty()) return outcomes;
  const std::lock_guard<std::mutex> lock(m.model_mutex);
  ModelRunner& runner = m.runners.at(index);
  std::vector<Outcome> scored = runner.score(accepted_names, accepted);
  for (size_t k = 0; k < scored.size(); ++k) outcomes[outcome_of[k]] = std::move(scored[k]);
  m.note_device();
  return outcomes;
}

size_t Pipeline::run(const Run& run) {
  Impl& m = *impl_;
  const size_t n = run.names.size();
  if (n == 0) return 0;
  const int threads = std::clamp(run.threads > 0 ? run.threads : m.params.threads, 1,
                                 static_cast<int>(std::min<size_t>(n, 256)));
  const size_t batch = m.batch_images;
  Prefetcher prefetcher(run.names, run.load, threads,
                        std::max(2 * static_cast<size_t>(threads), batch), kHeldBytes);
  const size_t models = model_count();
  auto skipped = [&](size_t i, size_t model) { return run.skip && run.skip(i, model); };
  size_t first = 0;
  while (first < n && !(run.stop && run.stop())) {
    // Up to `batch` images in input order, fewer once they hold kHeldBytes (a large image
    // alone).
    std::vector<Prefetcher::Item> items;
    size_t held = 0;
    for (size_t i = first; i < std::min(first + batch, n) && held < kHeldBytes; ++i) {
      items.push_back(prefetcher.take(i));
      if (items.back().image) held += prepared_image_bytes(*items.back().image);
    }
    std::vector<std::vector<std::optional<Outcome>>> outcomes(
        items.size(), std::vector<std::optional<Outcome>>(models));
    for (size_t model = 0; model < models; ++model) {
      std::vector<std::string> names;
      std::vector<const PreparedImage*> ready;
      std::vector<size_t> item_of;
      for (size_t j = 0; j < items.size(); ++j) {
        if (skipped(first + j, model)) continue;
        if (!items[j].image) {
          outcomes[j][model] = failed(failure_of(items[j].error.kind), items[j].error.message);
          continue;
        }
        names.push_back(run.names[first + j]);
        ready.push_back(items[j].image.get());
        item_of.push_back(j);
      }
      std::vector<Outcome> scored = score(names, ready, model);
      for (size_t k = 0; k < scored.size(); ++k) outcomes[item_of[k]][model] = std::move(scored[k]);
    }
    for (size_t j = 0; j < items.size(); ++j) run.deliver(first + j, outcomes[j]);
    first += items.size();
  }
  return first;
}

}  // namespace musiq
