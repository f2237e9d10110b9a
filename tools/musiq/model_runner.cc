#include "tools/musiq/model_runner.h"

#include <cmath>
#include <iostream>

#include "engine/error.h"

namespace musiq::cli {
namespace {

class ScorerBackend : public ScoringBackend {
 public:
  explicit ScorerBackend(std::unique_ptr<Scorer> scorer) : scorer_(std::move(scorer)) {}
  ScoreResult score(const PreparedImage& image) override { return scorer_->score_prepared(image); }
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

Record ModelRunner::score(const std::string& path, const PreparedImage& image) {
  Record r;
  r.path = path;
  r.model = label_;
  std::string failure;
  try {
    const ScoreResult s = backend_->score(image);
    if (!std::isfinite(s.score)) {
      r.error = path + ": the model gave a non-finite score (" + std::to_string(s.score) +
                "); are the weights broken?";
      return r;
    }
    r.score = s.score;
    r.device = backend_->device().name;
    r.width = s.width;
    r.height = s.height;
    r.tokens = s.tokens;
    r.ms = s.total_ms();
    r.random_weights = backend_->model().random_weights;
    r.warning = s.warning;
    return r;
  } catch (const std::bad_alloc&) {
    failure = "out of memory";
  } catch (const std::exception& e) {
    failure = e.what();
  }
  r.error = path + ": scoring failed on " + backend_->device().name + ": " + failure;
  recover(failure);
  return r;
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
