#include <cstring>

#include "cpu/ops.h"

namespace musiq::cpu {

// im2col in (kh, kw, cin) column order, matching the HWIO kernel read as [kh*kw*cin, cout],
// then one GEMM.
void conv2d(const float* in, int n, int h, int w, int cin, const float* kernel, int kh, int kw,
            int cout, int stride, int pad_top, int pad_left, int out_h, int out_w,
            float* columns, float* out) {
  const int64_t k = int64_t{kh} * kw * cin;
  const int64_t positions = int64_t{n} * out_h * out_w;
  if (kh == 1 && kw == 1 && stride == 1 && pad_top == 0 && pad_left == 0) {
    linear(in, positions, cin, kernel, cout, nullptr, Epilogue::kBias, out);
    return;
  }
#pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < positions; ++p) {
    const int64_t img = p / (int64_t{out_h} * out_w);
    const int oy = static_cast<int>(p / out_w % out_h), ox = static_cast<int>(p % out_w);
    float* col = columns + p * k;
    for (int dy = 0; dy < kh; ++dy) {
      const int y = oy * stride - pad_top + dy;
      for (int dx = 0; dx < kw; ++dx) {
        const int x = ox * stride - pad_left + dx;
        float* dst = col + (int64_t{dy} * kw + dx) * cin;
        if (y < 0 || y >= h || x < 0 || x >= w) {
          std::memset(dst, 0, sizeof(float) * cin);
        } else {
          std::memcpy(dst, in + ((img * h + y) * w + x) * cin, sizeof(float) * cin);
        }
      }
    }
  }
  linear(columns, positions, static_cast<int>(k), kernel, cout, nullptr, Epilogue::kBias, out);
}

}  // namespace musiq::cpu
