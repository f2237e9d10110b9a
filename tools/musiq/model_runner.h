// One model of a batch run, and what happens when its device fails in the middle of it.
// A failure while scoring an image is an error record for that image (a failing packed
// pass is retried image by image by Scorer::score_batch). The device is then
// tested on a tiny image: if it still scores, the run goes on with it; if not, under
// --device auto the model is reopened on the CPU for the rest of the run (said once on
// stderr), and otherwise the run cannot go on (musiq::Error).
#pragma once
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "engine/musiq.h"
#include "tools/musiq/records.h"

namespace musiq::cli {

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

class ModelRunner {
 public:
  using OpenOnCpu = std::function<std::unique_ptr<ScoringBackend>()>;
  // `label`: the model's name in records. `requested`: the --device asked for.
  ModelRunner(std::string label, std::unique_ptr<ScoringBackend> backend, DeviceKind requested,
              OpenOnCpu open_on_cpu);

  // The records of images scored together in packed passes, in input order: a score, or an
  // error (the scorer's, or a non-finite score). Throws musiq::Error when the device can no
  // longer score.
  std::vector<Record> score(std::span<const std::string> paths,
                            std::span<const PreparedImage* const> images);
  Record score(const std::string& path, const PreparedImage& image);  // one image

  const std::string& label() const { return label_; }
  const ScoringBackend& backend() const { return *backend_; }

 private:
  void recover(const std::string& failure);

  std::string label_;
  std::unique_ptr<ScoringBackend> backend_;
  DeviceKind requested_;
  OpenOnCpu open_on_cpu_;
};

}  // namespace musiq::cli
