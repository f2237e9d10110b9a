// The MUSIQ forward pass on a CUDA GPU, mirroring CpuModel (engine/cpu_model.h) stage by
// stage with the kernels of kernels/ops.cuh. CUDA builds only (engine/gpu_model.cc is added
// by kernels/kernels.cmake); this header has no CUDA types, so engine/scorer.cc can include
// it under #ifdef MUSIQ_WITH_CUDA without the CUDA headers.
#pragma once
#include <memory>

#include "engine/model_weights.h"
#include "engine/image.h"
#include "engine/preprocess.h"

namespace musiq {

// The last score call: its sequence length and the device time of its stages, from CUDA
// events (ms).
struct GpuRunStats {
  int64_t tokens = 0;        // sequence length, CLS included
  double upload_ms = 0;      // host-to-device copies
  double preprocess_ms = 0;  // normalize, resizes, patches (0 for score(tokens))
  double model_ms = 0;       // stem, encoder, head
};

class GpuModel {
 public:
  // Uploads the weights once to device 0 and creates the model's stream and cuBLAS
  // handle. Throws musiq::Error (no device, out of memory, ...).
  explicit GpuModel(ModelWeights weights);
  ~GpuModel();
  GpuModel(const GpuModel&) = delete;
  GpuModel& operator=(const GpuModel&) = delete;

  const ModelConfig& config() const;

  // Quality score of one image's tokens (preprocessed on the CPU). Synchronises the
  // model's stream before returning. The device workspace and the pinned upload buffers
  // grow to the largest image seen and are then reused: after the first image of a given
  // size, no allocation happens on this path. Throws musiq::Error, e.g. when the device
  // has too little memory for this many tokens (the message says how much was needed).
  // Not thread-safe: one score() at a time per GpuModel.
  float score(const Tokens& tokens);

  // The same from the decoded image, preprocessed on the device (spec section 2, kernels
  // bit-identical to make_tokens): only the bytes and the small plan are uploaded.
  float score_image(const Image& image);

  GpuRunStats last_run_stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace musiq
