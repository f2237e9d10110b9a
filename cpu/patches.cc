#include <cstring>

#include "cpu/ops.h"
#include "cpu/parallel_for.h"

namespace musiq::cpu {
namespace {

// The patch x patch pixels of `image` [h, w, 3] from (y0, x0) on into `dst`, zero outside.
// A function of its own, called with values: as the parallel loop's lambda body, reading
// them through its captures, it took twice the time.
void extract_patch(const float* image, int h, int w, int patch, int y0, int x0, float* dst) {
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

}  // namespace

void extract_patches(const float* image, int h, int w, int patch, int count_h, int count_w,
                     int pad_top, int pad_left, float* out) {
  const int64_t patch_values = int64_t{patch} * patch * 3;
  parallel_for(int64_t{count_h} * count_w, [&](int64_t p) {
    extract_patch(image, h, w, patch, static_cast<int>(p / count_w) * patch - pad_top,
                  static_cast<int>(p % count_w) * patch - pad_left, out + p * patch_values);
  });
}

}  // namespace musiq::cpu
