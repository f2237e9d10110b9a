// One model of a pipeline, and what happens when its device fails part way. A failure while
// scoring an image is that image's outcome (a failing packed pass is retried image by image
// by Scorer::score_batch). The device is then tested on a tiny image: if it still scores,
// scoring goes on with it; if not, under --device auto the model is reopened on the CPU for
// the rest (said once through the note callback), and otherwise scoring cannot go on
// (musiq::Error).
#pragma once
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "base/error.h"
#include "engine/musiq.h"
#include "engine/pipeline.h"

namespace musiq {

// What ModelRunner needs of a scorer. The seam lets tests inject device failures.
class ScoringBackend {
 public:
  virtual ~ScoringBackend() = default;
  // One item per image, as Scorer::score_batch: an image's failure is its item's error.
  virtual std::vector<BatchItem> score_batch(std::span<const PreparedImage* const> images) = 0;
  virtual ScoreResult score_image(const Image& image) = 0;  // throws on failure
  virtual const ModelInfo& model() const = 0;
  virtual const DeviceChoice& device() const = 0;
};

std::unique_ptr<ScoringBackend> backend_for(std::unique_ptr<Scorer> scorer);

// The outcome's failure for what an image's work threw.
Failure failure_of(ErrorKind kind);

class ModelRunner {
 public:
  using OpenOnCpu = std::function<std::unique_ptr<ScoringBackend>()>;
  using Note = std::function<void(const std::string&)>;
  // `requested`: the device asked for. `note`: may be null.
  ModelRunner(std::unique_ptr<ScoringBackend> backend, DeviceKind requested,
              OpenOnCpu open_on_cpu, Note note);

  // One outcome per image, scored together in packed passes, in input order: a score, or
  // an error naming names[i]. Throws musiq::Error when the device can no longer score.
  std::vector<Outcome> score(std::span<const std::string> names,
                             std::span<const PreparedImage* const> images);

  const ScoringBackend& backend() const { return *backend_; }
  // Why the run left the GPU for the CPU, else "".
  const std::string& fallback_reason() const { return fallback_reason_; }

 private:
  void recover(const std::string& failure);

  std::unique_ptr<ScoringBackend> backend_;
  DeviceKind requested_;
  OpenOnCpu open_on_cpu_;
  Note note_;
  std::string fallback_reason_;
};

}  // namespace musiq
