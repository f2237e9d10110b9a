// head_score: the quality score from the head's logits, as cpu/head.cc computes it: the
// logit itself for one class (spaq, koniq, paq2piq); for C classes (ava, C = 10) the mean
// of the softmax, sum p_i * i for i = 1..C, in double, max-subtracted.
//
// Launch: one thread per image of a batch. C is 1 or 10 (at most ~1,000 for an ImageNet
// head); the launch costs more than the arithmetic, and a single thread per row keeps the
// CPU's summation order and its double precision, so the score agrees to float rounding
// (test: 1e-6 abs + 1e-6 rel; exact for one class). The scores stay on the device (no sync)
// for the caller to copy with the rest of a batch's results.
#include "base/error.h"
#include "kernels/cuda_check.h"
#include "kernels/ops.cuh"

namespace musiq::cuda {
namespace {

__global__ void head_score_kernel(const float* __restrict__ all_logits, int64_t rows,
                                  int num_classes, float* __restrict__ scores) {
  const int64_t row = int64_t{blockIdx.x} * blockDim.x + threadIdx.x;
  if (row >= rows) return;
  const float* logits = all_logits + row * num_classes;
  float* score = scores + row;
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

void head_score(const float* logits, int64_t rows, int num_classes, float* scores,
                cudaStream_t stream) {
  if (num_classes <= 0)
    throw Error("head_score: num_classes must be positive, got " + std::to_string(num_classes));
  if (rows <= 0) return;
  constexpr int kRowsPerBlock = 64;
  head_score_kernel<<<static_cast<unsigned>((rows + kRowsPerBlock - 1) / kRowsPerBlock),
                      kRowsPerBlock, 0, stream>>>(logits, rows, num_classes, scores);
  CUDA_CHECK_LAUNCH();
}

}  // namespace musiq::cuda
