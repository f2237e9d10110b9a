// Public API: open a scorer on a weights file, score images; find and inspect weights
// files; the devices. With the headers it includes (errors, model config, weights
// locations, devices, images), the whole API the CLI (tools/musiq/) builds on;
// engine/developer.h adds what only the developer commands need.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "base/alternatives.h"        // alternatives: "spaq, koniq, paq2piq or ava"
#include "base/error.h"               // musiq::Error
#include "base/precision.h"           // Precision, kPrecisionNames, parse_precision
#include "engine/decode/image.h"       // Image, DecodeOptions, load_image_file
#include "engine/device.h"             // DeviceKind, select_device, query_*_info
#include "weights/config.h"            // ModelConfig
#include "weights/weights.h"           // WeightsFile, load_weights
#include "weights/weights_locator.h"  // kModelNames, locate_weights, weights_cache_dir

namespace musiq {

// Rows (tokens + CLS) one packed forward pass may hold: bounds score_batch's memory
// (~14 KB a row on either device, plus 12 KB of patches on the GPU: ~0.4 GB). A 12 MP
// photo (12,164 rows) fits alone; small images go together.
inline constexpr int64_t kDefaultBatchRows = 16384;

// Images a caller should hand score_batch at once when it has many (the CLI's --batch
// default; bench/RESULTS.md, "Packed batches"). CPU: batch 8 scores about 1.1x the images a
// second of batch 1 at 400x250 and 1024x768. GPU: one 1024x768 image (919 rows) gives the
// encoder GEMMs ~72 output tiles and attention 90 blocks, under one wave of an H100's 132
// SMs; 16 such images (14,704 rows, within the default row budget) fill several waves.
constexpr int default_batch_images(DeviceKind device) {
  return device == DeviceKind::kCuda ? 16 : 8;
}

struct ScorerParams {
  std::string weights_path;
  // The file at weights_path already read by load_weights, or null (open reads it). Reading
  // forks a child process: a program that starts threads first (musiq serve) reads the
  // weights before them, as a fork beside running threads is safe only with some allocators.
  std::shared_ptr<const WeightsFile> weights;
  // The model name the path was looked up by (or given with): the file must hold that
  // variant (random test weights pass). "": any variant.
  std::string model_name;
  DeviceKind device = DeviceKind::kAuto;
  // The arithmetic (docs/precision.md): fp32, exact, the default; bf16 on either device; tf32,
  // GPU only, and refused by the CPU.
  Precision precision = Precision::kFp32;
  DecodeOptions decode;  // with a target size, score_file resizes every image to it
  int64_t batch_rows = kDefaultBatchRows;  // see kDefaultBatchRows
};

struct ScoreResult {
  float score = 0.0f;
  int width = 0, height = 0;  // the image as decoded
  // The size the model scored it at: width x height, or DecodeOptions::target.
  int scored_width = 0, scored_height = 0;
  int64_t tokens = 0;  // sequence length the model ran on, CLS included
  // Preprocessing on the GPU counts in preprocess_ms; upload_ms is the host-to-device copy
  // (0 on the CPU). GPU stage times come from CUDA events; model_ms is the rest of the call.
  // In a batch, upload_ms and model_ms are the batch's, shared out by tokens.
  double decode_ms = 0, preprocess_ms = 0, upload_ms = 0, model_ms = 0;
  std::string warning;  // the decoder's warning (Image::warning), "" if none
  int batch_images = 1;  // images that shared this image's forward pass
  double total_ms() const { return decode_ms + preprocess_ms + upload_ms + model_ms; }
};

// One image's outcome in Scorer::score_batch: its result, or the error it alone met.
struct BatchItem {
  ScoreResult result;  // meaningful when ok()
  std::string error;   // one line; empty on success
  // The error is a non-finite score (result.score holds it): the weights are broken, the
  // device is not.
  bool non_finite = false;
  bool ok() const { return error.empty(); }
};

struct ModelInfo {
  std::string weights_path;
  std::string variant;  // spaq, koniq, paq2piq, ava, random
  bool random_weights = false;
  ModelConfig config;
  int64_t parameter_count = 0;
};

// A weights file, loaded and checked exactly as Scorer::open checks it (throws musiq::Error
// naming what is wrong), described without building a model (`musiq info --weights`).
struct WeightsFileInfo {
  ModelInfo model;
  std::string source;   // where the weights came from (the file's `source` attribute)
  int64_t tensors = 0;  // parameter arrays in the file
};
WeightsFileInfo inspect_weights(const std::string& path);

// An image decoded and turned into model input, ready for every scorer that shares the
// preprocessing settings (all official models do). Made on any thread.
struct PreparedImage;
struct PreparedImageDeleter {
  void operator()(PreparedImage* p) const;
};
using PreparedImagePtr = std::unique_ptr<PreparedImage, PreparedImageDeleter>;

// The memory a prepared image holds (its tokens, or its pixels), to bound what a caller
// keeps in flight by bytes rather than by count.
size_t prepared_image_bytes(const PreparedImage& image);

// Decodes the file and prepares it for the device that will score it: for the CPU the
// tokens are made now (on the calling thread); for the GPU (kCuda) the decoded image is
// kept, to be preprocessed on the device. Either scorer accepts either; this only decides
// where the work happens. Refuses (before decoding) an image whose header declares more
// than decode.max_pixels pixels or a model input longer than decode.max_tokens tokens.
// With decode.target set, the decoded image is resized to it first (on the CPU).
// Throws musiq::Error naming the file.
PreparedImagePtr prepare_image_file(const std::string& path, const ModelConfig& config,
                                    const DecodeOptions& decode,
                                    DeviceKind device = DeviceKind::kCpu);
// The same for an image in memory: encoded bytes, decoded exactly as a file's (`name`
// stands for the path in messages).
PreparedImagePtr prepare_encoded_image(const std::vector<uint8_t>& bytes, const std::string& name,
                                       const ModelConfig& config, const DecodeOptions& decode,
                                       DeviceKind device = DeviceKind::kCpu);
// Throws musiq::Error naming `name` when a width x height image makes a model input longer
// than max_tokens (the cost budget: time and memory grow with tokens, attention with their
// square). prepare_image_file and prepare_encoded_image check it from the header.
void check_token_budget(int width, int height, const ModelConfig& config, int64_t max_tokens,
                        const std::string& name);
// An image decoded by the caller (e.g. pixels from memory), resized to `target` when it is
// set (engine/preprocess/target_size.h). Throws musiq::Error for an image without pixels
// or a target size with a side under 1.
PreparedImagePtr prepare_image(Image image, const ModelConfig& config,
                               DeviceKind device = DeviceKind::kCpu, TargetSize target = {});
// The rows (tokens + CLS) the image takes in a packed forward pass: what it costs a batch
// (ScorerParams::batch_rows).
int64_t prepared_rows(const PreparedImage& image);
// The decoder's warning about the image (Image::warning), "" if none.
const std::string& prepared_warning(const PreparedImage& image);

class Scorer {
 public:
  // Loads and validates the weights, picks the device. Throws musiq::Error.
  static std::unique_ptr<Scorer> open(const ScorerParams& params);
  ~Scorer();

  // A score that is not finite (broken weights) is an error here and in score_batch: no
  // caller ever gets inf or NaN as a score.
  ScoreResult score_file(const std::string& path);  // throws musiq::Error naming the file
  ScoreResult score_image(const Image& image);       // throws musiq::Error
  // The prepared image must come from a config with this model's preprocessing settings.
  ScoreResult score_prepared(const PreparedImage& image);
  // Several images in packed forward passes (consecutive images together while their rows
  // stay within ScorerParams::batch_rows; a larger image alone), results in input order.
  // Each score equals the image's single score within float rounding. One image's failure
  // (a non-finite score included) is its item's error: the others are scored regardless.
  // Throws nothing per image.
  std::vector<BatchItem> score_batch(std::span<const PreparedImage* const> images);

  const ModelInfo& model() const;
  const DeviceChoice& device() const;
  Precision precision() const;

 private:
  struct Impl;
  explicit Scorer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace musiq
