// Public API: the scoring pipeline every front end runs (the CLI's score and serve, the C
// API, Python). It finds and opens the models, prepares images of every kind (a file,
// encoded bytes, pixels in memory) on worker threads a bounded distance ahead of the model,
// packs them into forward passes, refuses what strict mode refuses, and keeps scoring when
// a GPU fails part way (under --device auto, on the CPU). Each image's failure is its
// outcome's one-line message; nothing is thrown per image.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "engine/musiq.h"

namespace musiq {

// Why an image has no score. kImage: it could not be read, decoded or scored, or strict
// mode refused it; kOutOfMemory, kInternal: what its work threw, by its ErrorKind
// (describe_exception); kStopped: the run was stopped before it was scored.
enum class Failure { kNone, kImage, kOutOfMemory, kInternal, kStopped };

// One image's outcome with one model.
struct Outcome {
  Failure failure = Failure::kNone;
  std::string error;   // "NAME: problem" when failure != kNone
  ScoreResult result;  // when ok(); result.warning is the decoder's warning, if any
  std::string device;  // the device that scored it, when ok()
  bool ok() const { return failure == Failure::kNone; }
};

// 8-bit pixels in memory: rows `row_stride` bytes apart, `channels` (1 gray, 3 RGB,
// 4 RGBA) bytes per pixel. Gray is replicated to RGB and alpha dropped, as for files.
struct Pixels {
  const uint8_t* data = nullptr;
  int64_t width = 0, height = 0;  // 64-bit: sides past INT_MAX are refused, never cut
  int64_t row_stride = 0;
  int channels = 3;
};

// One image to prepare. The memory behind `encoded` and `pixels` is the caller's and must
// stay valid while it is prepared. `name` is the path for files, else what messages call it.
struct ImageSource {
  enum class Kind { kFile, kEncoded, kPixels };
  Kind kind = Kind::kFile;
  std::string name;
  const uint8_t* encoded = nullptr;
  size_t encoded_size = 0;
  Pixels pixels;

  static ImageSource file(std::string path) {
    ImageSource s;
    s.name = std::move(path);
    return s;
  }
  static ImageSource encoded_bytes(std::string name, const uint8_t* data, size_t size) {
    ImageSource s = file(std::move(name));
    s.kind = Kind::kEncoded;
    s.encoded = data;
    s.encoded_size = size;
    return s;
  }
  static ImageSource in_memory(std::string name, const Pixels& pixels) {
    ImageSource s = file(std::move(name));
    s.kind = Kind::kPixels;
    s.pixels = pixels;
    return s;
  }
};

struct PipelineParams {
  // Official model names, each looked up as locate_weights does; with `weights`, one name.
  std::vector<std::string> models{"koniq"};
  // A weights file used instead of the lookup. The model it holds is checked against
  // models[0] only when `check_variant` (the name was given, not defaulted).
  std::string weights;
  bool check_variant = false;
  // `weights` already read (load_weights), for a program that must read before it starts
  // threads (ScorerParams::weights).
  std::shared_ptr<const WeightsFile> weights_read;
  DeviceKind device = DeviceKind::kAuto;
  Precision precision = Precision::kFp32;  // ScorerParams::precision
  DecodeOptions decode;
  int64_t batch_rows = kDefaultBatchRows;
  int threads = 2;       // workers that prepare images ahead of the model in run()
  int batch_images = 0;  // images per packed pass in run(); 0: default_batch_images(device)
  bool strict = false;   // an image the decoder warns about fails instead of scoring
  // Notes a user should see once (the GPU given up for the CPU); null: none.
  std::function<void(const std::string&)> on_note;
};

class Pipeline {
 public:
  // Finds, loads and checks every model and picks the device. Throws musiq::Error (the
  // CLI's message): weights missing or invalid, models whose preprocessing differs.
  static std::unique_ptr<Pipeline> open(const PipelineParams& params);
  ~Pipeline();

  size_t model_count() const;
  const ModelInfo& model(size_t index = 0) const;
  // What records call model `index`: its name, or the file's variant when found by file.
  const std::string& label(size_t index = 0) const;
  // The device scoring now: the CPU after a GPU failure under --device auto.
  DeviceChoice device() const;
  // Why device "auto" runs on the CPU although a GPU is present, else "".
  std::string device_note() const;
  bool gpu_available() const { return gpu_available_; }  // whichever device scores
  Precision precision() const;

  // Decodes and prepares one image for the models (any thread). Throws musiq::Error
  // naming it.
  PreparedImagePtr prepare(const ImageSource& source) const;
  // One image prepared on this thread and scored with model `index` (any thread).
  Outcome score(const ImageSource& source, size_t index = 0);
  // Scores prepared images with model `index`, in one packed call where rows allow (any
  // thread: the model runs one call at a time). One outcome per image, in order;
  // `names` are what messages call them. Throws musiq::Error only when the device can no
  // longer score and the run cannot go on on the CPU.
  std::vector<Outcome> score(std::span<const std::string> names,
                             std::span<const PreparedImage* const> images, size_t index = 0);

  // What run() scores: images [0, names.size()), with every model, in input order.
  struct Run {
    std::vector<std::string> names;  // what messages call each image
    // Prepares image i (prepare(), or the caller's own way), on worker threads, each once.
    std::function<PreparedImagePtr(size_t i)> load;
    // Image i's outcome per model (nullopt where skipped), on run()'s thread, in order.
    std::function<void(size_t i, const std::vector<std::optional<Outcome>>& outcomes)> deliver;
    // When given: model m need not score image i (it is done already).
    std::function<bool(size_t i, size_t m)> skip;
    // When given, asked before each packed pass: once true, nothing more is delivered.
    std::function<bool()> stop;
    int threads = 0;  // preparing workers; 0: PipelineParams::threads
  };
  // Returns how many images were delivered. Throws as score() does.
  size_t run(const Run& run);


 private:
  struct Impl;
  explicit Pipeline(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  bool gpu_available_ = false;
};

}  // namespace musiq
