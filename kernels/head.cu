// head_score: the quality score from the head's logits, as cpu/head.cc computes it: the
// logit itself for one class (spaq, koniq, paq2piq); for C classes (ava, C = 10) the mean
// of the softmax, sum p_i * i for i = 1..C, in double, max-subtracted.
//
// Launch: one thread, one block. C is 1 or 10 (at most ~1,000 for an ImageNet head); the
// launch costs more than the arithmetic, and a single thread keeps the CPU's summation order
// and its double precision, so the score agrees to float rounding (test: 1e-6 abs + 1e-6 rel;
// exact for one class). The score stays on the device (no sync) for the caller to copy with
// the rest of a batch's results.
//
// History: v1 (this one).
#include "engine/error.h"
#include "kernels/cuda_check.h"
#include "kernels/ops.cuh"

namespace musiq::cuda {
namespace {

__global__ void head_score_kernel(const float* __restrict__ logits, int num_classes,
                                  float* __restrict__ score) {
  if (num_classes == 1) {
    *score = logits[0];
    return;
  }
  float max = logits[0];
  for (int i = 1; i < num_classes; ++i) max = logits[i] > max ? logits[i] : max;
  double sum = 0.0, weighted = 0.0;
  for (int i = 0; i < num_classes; ++i) {
    const double e = exp(double(logits[i]) - max);
    sum += e;
    weighted += e * (i + 1);
  }
  *score = static_cast<float>(weighted / sum);
}

}  // namespace

void head_score(const float* logits, int num_classes, float* score, cudaStream_t stream) {
  if (num_classes <= 0)
    throw Error("head_score: num_classes must be positive, got " + std::to_string(num_classes));
  head_score_kernel<<<1, 1, 0, stream>>>(logits, num_classes, score);
  CUDA_CHECK_LAUNCH();
}

}  // namespace musiq::cuda
