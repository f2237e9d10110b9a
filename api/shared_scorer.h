// What the C API (api/c_api.cc) and the Python module (python/native_module.cc) share:
// a scorer that any thread may call, images of every kind the library accepts (a file,
// encoded bytes, pixels in memory), and batches prepared on worker threads. Throws nothing
// per image: each image's failure is its one-line message, as the CLI prints it.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "engine/musiq.h"

namespace musiq::api {

// 8-bit pixels in memory: rows `row_stride` bytes apart, `channels` (1 gray, 3 RGB,
// 4 RGBA) bytes per pixel. Gray is replicated to RGB and alpha dropped, as for files.
struct Pixels {
  const uint8_t* data = nullptr;
  int64_t width = 0, height = 0;  // 64-bit: sides past INT_MAX are refused, never cut
  int64_t row_stride = 0;
  int channels = 3;
};

// One image to score. The memory behind `encoded` and `pixels` is the caller's and must
// stay valid for the call. `name` is the path for files, else what messages call it.
struct Input {
  enum class Kind { kFile, kEncoded, kPixels };
  Kind kind = Kind::kFile;
  std::string name;
  const uint8_t* encoded = nullptr;
  size_t encoded_size = 0;
  Pixels pixels;
};

// kImage, kOutOfMemory, kInternal: what the image's work threw, by its ErrorKind
// (describe_exception, base/error.h); kStopped: `stop` said so before it was scored.
enum class Failure { kNone, kImage, kOutOfMemory, kInternal, kStopped };

struct Outcome {
  Failure failure = Failure::kNone;
  std::string error;  // "NAME: problem" when failure != kNone
  ScoreResult result;
};

struct OpenOptions {
  std::string model;    // a model name as the CLI resolves it; "" = koniq
  std::string weights;  // a weights file, overriding the model name's lookup
  std::string device = "auto";
  int threads = 2;  // workers that decode and preprocess ahead of the model in batches
  // 0: the default; below 0 is refused by open().
  int64_t max_pixels = DecodeOptions{}.max_pixels;
  int64_t max_tokens = DecodeOptions{}.max_tokens;  // the cost budget (the CLI's --max-tokens)
  TargetSize target;  // every image resized to it before scoring (the CLI's --target-size)
};

class SharedScorer {
 public:
  // Finds and loads the weights, picks the device. Throws musiq::Error (the CLI's message).
  // A model found by name must hold that model.
  static std::unique_ptr<SharedScorer> open(const OpenOptions& options);

  // Any thread, concurrently: images are decoded on the calling thread; the model runs one
  // call at a time (it already uses every core, or the GPU).
  Outcome score(const Input& input);
  // In input order. `threads` workers (<= 0: the scorer's default) decode ahead while the
  // calling thread runs the model. `stop`, when given, is asked on the calling thread
  // before each packed model call; once it says true, nothing more is scored and the images
  // not scored get Failure::kStopped.
  std::vector<Outcome> score_many(const std::vector<Input>& inputs, int threads,
                                  const std::function<bool()>& stop = {});

  const std::string& model_label() const { return label_; }  // the name, or the file's variant
  const Scorer& engine() const { return *scorer_; }
  // Why device "auto" runs on the CPU although a GPU is present (the CLI's stderr note),
  // else "".
  std::string device_note() const;
  // Whether a usable GPU was found, whichever device scores.
  bool gpu_available() const { return gpu_available_; }

 private:
  using Indexed = std::pair<size_t, PreparedImagePtr>;
  SharedScorer(std::unique_ptr<Scorer> scorer, std::string label, OpenOptions options);
  PreparedImagePtr prepare(const Input& input) const;  // throws musiq::Error
  // The one place images meet the model: one packed Scorer::score_batch call, under the
  // model mutex. Model failures are named after inputs[index].
  void score_prepared(std::vector<Indexed>& images, const std::vector<Input>& inputs,
                      std::vector<Outcome>& outcomes);

  std::unique_ptr<Scorer> scorer_;
  std::string label_;
  OpenOptions options_;
  bool gpu_available_ = false;
  std::mutex model_mutex_;
};

}  // namespace musiq::api
