#include "engine/pipeline/model_runner.h"

namespace musiq {
namespace {

class ScorerBackend : public ScoringBackend {
 public:
  explicit ScorerBackend(std::unique_ptr<Scorer> scorer) : scorer_(std::move(scorer)) {}
  std::vector<BatchItem> score_batch(std::span<const PreparedImage* const> images) override {
    return scorer_->score_batch(images);
  }
  ScoreResult score_image(const Image& image) override { return scorer_->score_image(image); }
  const ModelInfo& model() const override { return scorer_->model(); }
  const DeviceChoice& device() const override { return scorer_->device(); }

 private:
  std::unique_ptr<Scorer> scorer_;
};

// The smallest image the model takes: one patch, a flat mid grey.
Image tiny_image() {
  Image image;
  image.width = image.height = 32;
  image.rgb.assign(32 * 32 * 3, 128);
  return image;
}

}  // namespace

Failure failure_of(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kError: return Failure::kImage;
    case ErrorKind::kOutOfMemory: return Failure::kOutOfMemory;
    case ErrorKind::kInternal: break;
  }
  return Failure::kInternal;
}

std::unique_ptr<ScoringBackend> backend_for(std::unique_ptr<Scorer> scorer) {
  return std::make_unique<ScorerBackend>(std::move(scorer));
}

ModelRunner::ModelRunner(std::unique_ptr<ScoringBackend> backend, DeviceKind requested,
                         OpenOnCpu open_on_cpu, Note note)
    : backend_(std::move(backend)),
      requested_(requested),
      open_on_cpu_(std::move(open_on_cpu)),
      note_(std::move(note)) {}

std::vector<Outcome> ModelRunner::score(std::span<const std::string> names,
                                        std::span<const PreparedImage* const> images) {
  const std::string device = backend_->device().name;  // before recover() may change it
  std::vector<BatchItem> items;
  Failure whole = Failure::kNone;  // the call's own failure, every image's
  try {
    items = backend_->score_batch(images);
  } catch (...) {
    const ErrorReport report = describe_exception(std::current_exception());
    whole = failure_of(report.kind);
    items.assign(images.size(), {});
    for (BatchItem& item : items) item.error = report.message;
  }
  std::vector<Outcome> outcomes(images.size());
  std::string failure;  // the first, for recover()
  for (size_t i = 0; i < images.size(); ++i) {
    Outcome& o = outcomes[i];
    const BatchItem& item = items[i];
    if (item.non_finite) {
      o.failure = Failure::kImage;
      o.error = names[i] + ": " + item.error;  // the weights' fault, not the device's
      continue;
    }
    if (!item.ok()) {
      o.failure = whole != Failure::kNone ? whole : Failure::kImage;
      o.error = names[i] + ": scoring failed on " + device + ": " + item.error;
      if (failure.empty()) failure = item.error;
      continue;
    }
    o.result = item.result;
    o.device = device;
  }
  if (!failure.empty()) recover(failure);
  return outcomes;
}

void ModelRunner::recover(const std::string& failure) {
  try {
    backend_->score_image(tiny_image());
    return;  // the device still works: only that image failed
  } catch (const std::exception&) {
  }
  const std::string device = backend_->device().name;
  const std::string problem = "device " + device + " can no longer score (" + failure + ")";
  if (requested_ != DeviceKind::kAuto || backend_->device().kind == DeviceKind::kCpu)
    throw Error(problem);
  if (note_) note_(problem + "; scoring the rest on the CPU");
  backend_ = open_on_cpu_();
  fallback_reason_ = problem;
}

}  // namespace musiq
