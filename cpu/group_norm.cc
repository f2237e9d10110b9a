#include <cmath>

#include "cpu/ops.h"

namespace musiq::cpu {

void group_norm(float* x, int n, int hw, int c, int groups, const float* scale,
                const float* bias, float eps, bool relu) {
  const int group_size = c / groups;
#pragma omp parallel for collapse(2) schedule(static)
  for (int img = 0; img < n; ++img) {
    for (int g = 0; g < groups; ++g) {
      float* base = x + int64_t{img} * hw * c + g * group_size;
      // Official flax GroupNorm: var = E[x^2] - E[x]^2 (accumulated here in double).
      double sum = 0.0, sum_sq = 0.0;
      for (int p = 0; p < hw; ++p) {
        for (int j = 0; j < group_size; ++j) {
          const double v = base[int64_t{p} * c + j];
          sum += v;
          sum_sq += v * v;
        }
      }
      const double count = double(hw) * group_size;
      const double mean = sum / count;
      const double var = sum_sq / count - mean * mean;
      const float inv_std = static_cast<float>(1.0 / std::sqrt(var + eps));
      const float fmean = static_cast<float>(mean);
      for (int p = 0; p < hw; ++p) {
        for (int j = 0; j < group_size; ++j) {
          const int ch = g * group_size + j;
          float& v = base[int64_t{p} * c + j];
          v = (v - fmean) * inv_std * scale[ch] + bias[ch];
          if (relu && v < 0.0f) v = 0.0f;
        }
      }
    }
  }
}

}  // namespace musiq::cpu
