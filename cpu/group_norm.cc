// group_norm: per-channel sums over the positions, 16 channels at a time held in registers
// (a group's 2 channels read at stride C ran at 5-10 GFLOP/s), in double, reduced per group
// after; then (x - mean) * mul + bias with mul = inv_std * scale, not x * mul + shift, which
// cancels when the variance is small.
#include <algorithm>
#include <cmath>
#include <vector>

#include "cpu/isa.h"
#include "cpu/ops.h"
#include "cpu/parallel_for.h"

namespace musiq::cpu {
namespace {

// sum[ch] and sum_sq[ch] of x [hw, c] over its hw positions, in position order. In blocks
// of 16 channels whose sums stay in registers; the channels past the last whole block,
// as one more block of `tail` channels (sums in memory).
template <Isa>
__attribute__((always_inline)) inline void channel_sums_kernel(const float* x, int hw, int c,
                                                               double* sum, double* sum_sq) {
  constexpr int kBlock = 16;
  int c0 = 0;
  for (; c0 + kBlock <= c; c0 += kBlock) {
    double s[kBlock] = {}, s2[kBlock] = {};
    for (int p = 0; p < hw; ++p) {
      const float* row = x + int64_t{p} * c + c0;
#pragma omp simd
      for (int j = 0; j < kBlock; ++j) {
        const double v = row[j];
        s[j] += v;
        s2[j] += v * v;
      }
    }
    std::copy_n(s, kBlock, sum + c0);
    std::copy_n(s2, kBlock, sum_sq + c0);
  }
  const int tail = c - c0;
  std::fill_n(sum + c0, tail, 0.0);
  std::fill_n(sum_sq + c0, tail, 0.0);
  for (int p = 0; p < hw; ++p) {
    const float* row = x + int64_t{p} * c + c0;
    for (int j = 0; j < tail; ++j) {
      const double v = row[j];
      sum[c0 + j] += v;
      sum_sq[c0 + j] += v * v;
    }
  }
}
MUSIQ_DISPATCH_BY_ISA(void, channel_sums,
                      (const float* x, int hw, int c, double* sum, double* sum_sq),
                      (x, hw, c, sum, sum_sq))

// x = (x - mean[ch]) * mul[ch] + bias[ch], then ReLU if `relu`, over x [hw, c].
template <Isa>
__attribute__((always_inline)) inline void normalize_kernel(float* x, int hw, int c,
                                                            const float* mean, const float* mul,
                                                            const float* bias, bool relu) {
  for (int p = 0; p < hw; ++p) {
    float* row = x + int64_t{p} * c;
#pragma omp simd
    for (int ch = 0; ch < c; ++ch) {
      const float v = (row[ch] - mean[ch]) * mul[ch] + bias[ch];
      row[ch] = relu && v < 0.0f ? 0.0f : v;
    }
  }
}
MUSIQ_DISPATCH_BY_ISA(void, normalize,
                      (float* x, int hw, int c, const float* mean, const float* mul,
                       const float* bias, bool relu),
                      (x, hw, c, mean, mul, bias, relu))

}  // namespace

void group_norm(float* x, int n, int hw, int c, int groups, const float* scale,
                const float* bias, float eps, bool relu) {
  const int group_size = c / groups;
  parallel_for(n, [&](int64_t img) {
    thread_local std::vector<double> sums;
    thread_local std::vector<float> factors;
    sums.resize(2 * size_t(c));
    factors.resize(2 * size_t(c));
    double *sum = sums.data(), *sum_sq = sum + c;
    float *mean_c = factors.data(), *mul = mean_c + c;
    float* image = x + img * hw * c;
    channel_sums(image, hw, c, sum, sum_sq);
    for (int g = 0; g < groups; ++g) {
      double s = 0.0, s2 = 0.0;
      for (int j = g * group_size; j < (g + 1) * group_size; ++j) {
        s += sum[j];
        s2 += sum_sq[j];
      }
      // Official flax GroupNorm: var = E[x^2] - E[x]^2.
      const double count = double(hw) * group_size;
      const double mean = s / count;
      const double inv_std = 1.0 / std::sqrt(s2 / count - mean * mean + eps);
      for (int j = g * group_size; j < (g + 1) * group_size; ++j) {
        mean_c[j] = static_cast<float>(mean);
        mul[j] = static_cast<float>(inv_std * scale[j]);
      }
    }
    normalize(image, hw, c, mean_c, mul, bias, relu);
  });
}

}  // namespace musiq::cpu
