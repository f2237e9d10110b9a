#include <limits>

#include "cpu/isa.h"
#include "cpu/ops.h"
#include "cpu/parallel_for.h"

namespace musiq::cpu {
namespace {

// Output row oy of image img: out_w positions of c channels at dst_row.
template <Isa>
__attribute__((always_inline)) inline void pool_row_kernel(const float* in, int h, int w, int c,
                                                           int out_w, int64_t img, int oy,
                                                           int pad_top, int pad_left,
                                                           float* dst_row) {
  for (int ox = 0; ox < out_w; ++ox) {
    float* dst = dst_row + int64_t{ox} * c;
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
MUSIQ_DISPATCH_BY_ISA(void, pool_row,
                      (const float* in, int h, int w, int c, int out_w, int64_t img, int oy,
                       int pad_top, int pad_left, float* dst_row),
                      (in, h, w, c, out_w, img, oy, pad_top, pad_left, dst_row))

}  // namespace

void max_pool_3x3_s2(const float* in, int n, int h, int w, int c, int out_h, int out_w,
                     float* out) {
  // SAME: total padding (out-1)*2+3-in, the smaller half before. Padding never wins.
  const int pad_top = ((out_h - 1) * 2 + 3 - h) / 2;
  const int pad_left = ((out_w - 1) * 2 + 3 - w) / 2;
  parallel_for(int64_t{n} * out_h, [&](int64_t row) {
    pool_row(in, h, w, c, out_w, row / out_h, static_cast<int>(row % out_h), pad_top, pad_left,
             out + row * out_w * c);
  });
}

}  // namespace musiq::cpu
