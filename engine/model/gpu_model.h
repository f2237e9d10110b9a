// The MUSIQ forward pass on a CUDA GPU: engine/model/forward.h over the kernels of
// kernels/ops.cuh. CUDA builds only (engine/CMakeLists.txt adds engine/model/gpu_model.cc);
// this header has no CUDA types, so engine/scorer.cc can include it under
// #ifdef MUSIQ_HAS_CUDA without the CUDA headers.
#pragma once
#include <memory>
#include <span>
#include <variant>
#include <vector>

#include "engine/decode/image.h"
#include "engine/model/model_weights.h"
#include "engine/preprocess/preprocess.h"

namespace musiq {

// The last call's sequence lengths and the device time of its stages, from CUDA events (ms).
struct GpuRunStats {
  std::vector<int64_t> tokens;  // per image, CLS included
  double upload_ms = 0;      // host-to-device copies of tokens and indices
  double preprocess_ms = 0;  // decoded images: upload, normalize, resizes, patches
  double model_ms = 0;       // stem, encoder, head
  bool graph = false;        // the model ran as a captured CUDA graph (engine/model/forward_graphs.h)
};

// One image for the GPU: tokens made on the CPU, or the decoded image, preprocessed on the
// device (spec section 2, kernels bit-identical to make_tokens).
using GpuInput = std::variant<const Tokens*, const Image*>;

class GpuModel {
 public:
  // Uploads the weights to device 0 in one copy and creates the model's stream and cuBLAS
  // handle. Throws musiq::Error (no device, out of memory, ...).
  explicit GpuModel(const ModelWeights& weights);
  ~GpuModel();
  GpuModel(const GpuModel&) = delete;
  GpuModel& operator=(const GpuModel&) = delete;

  const ModelConfig& config() const;

  // Scores of several images in one packed pass, in order. Synchronises the model's stream
  // before returning. The device workspace and the pinned staging buffer grow to the
  // largest batch seen and are then reused. Throws musiq::Error, e.g. when the device has
  // too little memory for this many tokens (the message says how much was needed).
  // Not thread-safe: one call at a time per GpuModel.
  std::vector<float> score_batch(std::span<const GpuInput> images);
  float score(const Tokens& tokens);
  float score_image(const Image& image);

  GpuRunStats last_run_stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace musiq
