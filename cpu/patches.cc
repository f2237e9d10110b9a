#include <cstring>

#include "cpu/ops.h"

namespace musiq::cpu {

void extract_patches(const float* image, int h, int w, int patch, int count_h, int count_w,
                     int pad_top, int pad_left, float* out) {
  const int64_t patch_values = int64_t{patch} * patch * 3;
#pragma omp parallel for schedule(static)
  for (int p = 0; p < count_h * count_w; ++p) {
    const int y0 = (p / count_w) * patch - pad_top;
    const int x0 = (p % count_w) * patch - pad_left;
    float* dst = out + p * patch_values;
    for (int dy = 0; dy < patch; ++dy) {
      float* row = dst + int64_t{dy} * patch * 3;
      const int y = y0 + dy;
      for (int dx = 0; dx < patch; ++dx) {
        const int x = x0 + dx;
        if (y < 0 || y >= h || x < 0 || x >= w) {
          row[dx * 3] = row[dx * 3 + 1] = row[dx * 3 + 2] = 0.0f;
        } else {
          std::memcpy(row + dx * 3, image + (int64_t{y} * w + x) * 3, 3 * sizeof(float));
        }
      }
    }
  }
}

}  // namespace musiq::cpu
