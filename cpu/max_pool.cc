#include <limits>

#include "cpu/ops.h"
#include "cpu/vector_math.h"  // MUSIQ_VECTOR_CLONES

namespace musiq::cpu {

MUSIQ_VECTOR_CLONES void max_pool_3x3_s2(const float* in, int n, int h, int w, int c, int out_h,
                                         int out_w, float* out) {
  // SAME: total padding (out-1)*2+3-in, the smaller half before. Padding never wins.
  const int pad_top = ((out_h - 1) * 2 + 3 - h) / 2;
  const int pad_left = ((out_w - 1) * 2 + 3 - w) / 2;
#pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < int64_t{n} * out_h * out_w; ++p) {
    const int64_t img = p / (int64_t{out_h} * out_w);
    const int oy = static_cast<int>(p / out_w % out_h), ox = static_cast<int>(p % out_w);
    float* dst = out + p * c;
    for (int ch = 0; ch < c; ++ch) dst[ch] = -std::numeric_limits<float>::infinity();
    for (int dy = 0; dy < 3; ++dy) {
      const int y = oy * 2 - pad_top + dy;
      if (y < 0 || y >= h) continue;
      for (int dx = 0; dx < 3; ++dx) {
        const int x = ox * 2 - pad_left + dx;
        if (x < 0 || x >= w) continue;
        const float* src = in + ((img * h + y) * w + x) * c;
        for (int ch = 0; ch < c; ++ch) dst[ch] = src[ch] > dst[ch] ? src[ch] : dst[ch];
      }
    }
  }
}

}  // namespace musiq::cpu
