// group_norm (in place): per image and group, statistics over (H*W, channels of the group),
// biased variance, then per-channel scale/bias, then ReLU if asked; cpu/group_norm.cc fused.
//
// Launch: one block per image, T = c * P threads with P = max(1, 256 / c) (c <= 1024):
// thread t always owns channel t % c and walks pixels t / c, t / c + P, ... so its
// per-channel partial sums stay in registers, and a warp reads consecutive channels of a
// pixel (coalesced: for c = 64 a warp reads 128 contiguous bytes). MUSIQ's four GroupNorms
// are [16x16, 64] (gn_root) and [8x8, 64 | 256] (the bottleneck unit): 256 threads per
// image, 16-64 elements per thread per pass, and one block per token, so a 961-token image
// launches 961 blocks. Partial sums meet in shared memory and one thread per group adds its
// P * (c / groups) partials in a fixed order: deterministic, no atomics.
//
// Numerics: the CPU's, cpu/group_norm.cc. One pass of statistics: each thread sums x and
// x^2 in double, one thread per group adds the partials in double, and the variance is
// E[x^2] - E[x]^2 in double (no cancellation at double precision for any float input that
// does not cancel on the CPU too); mean = float(mean), mul = float(inv_std * scale) per
// channel, and the output (x - mean) * mul + bias with _rn intrinsics so it is not
// contracted into an FMA: the CPU's expression. Only the order of the double sums differs.
// Tests: tests/gpu/group_norm_gpu_test.cc, 1e-5 abs + 1e-5 rel.
//
// Two passes (statistics, normalise); the second re-reads the image (64 KB for every MUSIQ
// shape) from L1/L2. Bound: DRAM, one read and one write of n * hw * c floats (961 tokens x
// 16 K floats x 8 B = 126 MB).
#include <cstdint>
#include <string>

#include "base/error.h"
#include "kernels/cuda_check.h"
#include "kernels/ops.cuh"

namespace musiq::cuda {
namespace {

constexpr int kTargetThreads = 256;
constexpr int kMaxChannels = 1024;

__global__ void group_norm_kernel(float* __restrict__ x, int hw, int c, int groups,
                                  const float* __restrict__ scale,
                                  const float* __restrict__ bias, float eps, bool relu) {
  extern __shared__ double smem[];
  const int threads = blockDim.x;                                    // c * pixel_step
  double* partial_sum = smem;                                        // [threads]
  double* partial_sq = partial_sum + threads;                        // [threads]
  double* group_inv = partial_sq + threads;                          // [groups]
  float* group_mean = reinterpret_cast<float*>(group_inv + groups);  // [groups]

  const int t = threadIdx.x;
  const int ch = t % c;
  const int pixel_step = threads / c;
  const int group_size = c / groups;
  const int g = ch / group_size;
  float* image = x + int64_t{blockIdx.x} * hw * c;

  // Pass 1: sums of x and x^2 (double).
  double sum = 0.0, sum_sq = 0.0;
  for (int p = t / c; p < hw; p += pixel_step) {
    const double v = image[int64_t{p} * c + ch];
    sum += v;
    sum_sq += v * v;
  }
  partial_sum[t] = sum;
  partial_sq[t] = sum_sq;
  __syncthreads();
  if (t < groups) {
    double s = 0.0, s2 = 0.0;
    for (int q = 0; q < pixel_step; ++q)
      for (int j = 0; j < group_size; ++j) {
        s += partial_sum[q * c + t * group_size + j];
        s2 += partial_sq[q * c + t * group_size + j];
      }
    const double count = double(hw) * group_size;
    const double mean = s / count;
    group_mean[t] = static_cast<float>(mean);
    group_inv[t] = 1.0 / sqrt(s2 / count - mean * mean + double(eps));
  }
  __syncthreads();

  // Pass 2: normalise, scale, shift, ReLU; in place.
  const float mean = group_mean[g];
  const float mul = static_cast<float>(group_inv[g] * scale[ch]), b = bias[ch];
  for (int p = t / c; p < hw; p += pixel_step) {
    float& v = image[int64_t{p} * c + ch];
    float y = __fadd_rn(__fmul_rn(__fsub_rn(v, mean), mul), b);
    if (relu && y < 0.0f) y = 0.0f;
    v = y;
  }
}

}  // namespace

void group_norm(float* x, int n, int hw, int c, int groups, const float* scale,
                const float* bias, float eps, bool relu, cudaStream_t stream) {
  if (n <= 0 || hw <= 0) return;
  if (c <= 0 || groups <= 0 || c % groups != 0)
    throw Error("group_norm: " + std::to_string(c) + " channels do not split into " +
                std::to_string(groups) + " groups");
  if (c > kMaxChannels)
    throw Error("group_norm: " + std::to_string(c) + " channels exceed the kernel's limit of " +
                std::to_string(kMaxChannels));
  const int pixel_step = c >= kTargetThreads ? 1 : kTargetThreads / c;
  const int threads = c * pixel_step;
  const size_t smem =
      sizeof(double) * (2 * size_t(threads) + size_t(groups)) + sizeof(float) * size_t(groups);
  group_norm_kernel<<<static_cast<unsigned>(n), threads, smem, stream>>>(x, hw, c, groups, scale,
                                                                         bias, eps, relu);
  CUDA_CHECK_LAUNCH();
}

}  // namespace musiq::cuda
