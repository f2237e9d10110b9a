#include "tools/musiq/model_runner.h"

#include <iostream>

#include "engine/musiq.h"

namespace musiq::cli {
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

std::unique_ptr<ScoringBackend> backend_for(std::unique_ptr<Scorer> scorer) {
  return std::make_unique<ScorerBackend>(std::move(scorer));
}

ModelRunner::ModelRunner(std::string label, std::unique_ptr<ScoringBackend> backend,
                         DeviceKind requested, OpenOnCpu open_on_cpu)
    : label_(std::move(label)),
      backend_(std::move(backend)),
      requested_(requested),
      open_on_cpu_(std::move(open_on_cpu)) {}

std::vector<Record> ModelRunner::score(std::span<const std::string> paths,
                                       std::span<const PreparedImage* const> images) {
  const std::string device = backend_->device().name;  // before recover() may change it
  std::vector<BatchItem> items;
  BatchItem failed;  // every image's, when the whole call fails
  try {
    items = backend_->score_batch(images);
  } catch (...) {
    failed.error = describe_exception(std::current_exception()).message;
  }
  if (!failed.ok()) items.assign(images.size(), failed);
  std::vector<Record> records(images.size());
  std::string failure;  // the first, for recover()
  for (size_t i = 0; i < images.size(); ++i) {
    Record& r = records[i];
    r.path = paths[i];
    r.model = label_;
    const BatchItem& item = items[i];
    if (item.non_finite) {
      r.error = r.path + ": " + item.error;  // the weights' fault, not the device's
      continue;
    }
    if (!item.ok()) {
      r.error = r.path + ": scoring failed on " + device + ": " + item.error;
      if (failure.empty()) failure = item.error;
      continue;
    }
    const ScoreResult& s = item.result;
    r.score = s.score;
    r.device = device;
    r.width = s.width;
    r.height = s.height;
    r.tokens = s.tokens;
    r.ms = s.total_ms();
    r.random_weights = backend_->model().random_weights;
    r.warning = s.warning;
  }
  if (!failure.empty()) recover(failure);
  return records;
}

Record ModelRunner::score(const std::string& path, const PreparedImage& image) {
  const PreparedImage* one[] = {&image};
  return std::move(score({&path, 1}, one)[0]);
}

void ModelRunner::recover(const std::string& failure) {
  try {
    backend_->score_image(tiny_image());
    return;  // the device still works: only that image failed
  } catch (const std::exception&) {
  }
  const std::string device = backend_->device().name;
  if (requested_ != DeviceKind::kAuto || backend_->device().kind == DeviceKind::kCpu)
    throw Error("device " + device + " can no longer score (" + failure + ")");
  std::cerr << "musiq: device " << device << " can no longer score (" << failure
            << "); scoring the rest on the CPU\n";
  backend_ = open_on_cpu_();
}

}  // namespace musiq::cli
