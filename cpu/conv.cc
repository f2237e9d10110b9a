#include <algorithm>
#include <cstddef>
#include <vector>

#include "cpu/gemm.h"
#include "cpu/ops.h"

namespace musiq::cpu {

void conv2d(const float* in, int n, int h, int w, int cin, const float* kernel, int kh, int kw,
            int cout, int stride, int pad_top, int pad_left, int out_h, int out_w,
            float* columns, float* out) {
  // Kept across calls: after the largest kernel so far, packing allocates nothing.
  thread_local std::vector<float> packed;
  const int k = kh * kw * cin;
  packed.resize(static_cast<std::size_t>(packed_floats(k, cout)));
  pack_columns(kernel, k, cout, cout, packed.data());
  conv2d_packed(in, n, h, w, cin, packed.data(), kh, kw, cout, stride, pad_top, pad_left, out_h,
                out_w, columns, out);
}

// im2col in (kh, kw, cin) column order, matching the HWIO kernel read as [kh*kw*cin, cout],
// then one GEMM.
void conv2d_packed(const float* in, int n, int h, int w, int cin, const float* packed_kernel,
                   int kh, int kw, int cout, int stride, int pad_top, int pad_left, int out_h,
                   int out_w, float* columns, float* out) {
  const int64_t k = int64_t{kh} * kw * cin;
  const int64_t positions = int64_t{n} * out_h * out_w;
  if (kh == 1 && kw == 1 && stride == 1 && pad_top == 0 && pad_left == 0) {
    linear_packed(in, positions, cin, packed_kernel, cout, nullptr, Epilogue::kBias, out);
    return;
  }
#pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < positions; ++p) {
    const int64_t img = p / (int64_t{out_h} * out_w);
    const int oy = static_cast<int>(p / out_w % out_h), ox = static_cast<int>(p % out_w);
    float* col = columns + p * k;
    // One kernel row's taps are contiguous in the input: (kw * cin) floats at a time, the
    // part outside the image zero (conv_root, cin = 3: 21 floats, not 7 copies of 3).
    const int x0 = ox * stride - pad_left;
    const int lo = std::max(0, -x0), hi = std::min(kw, w - x0);  // taps inside, [lo, hi)
    for (int dy = 0; dy < kh; ++dy) {
      const int y = oy * stride - pad_top + dy;
      float* dst = col + int64_t{dy} * kw * cin;
      if (y < 0 || y >= h || lo >= hi) {
        std::fill_n(dst, int64_t{kw} * cin, 0.0f);
        continue;
      }
      std::fill_n(dst, int64_t{lo} * cin, 0.0f);
      std::copy_n(in + ((img * h + y) * w + x0 + lo) * cin, int64_t{hi - lo} * cin,
                  dst + int64_t{lo} * cin);
      std::fill_n(dst + int64_t{hi} * cin, int64_t{kw - hi} * cin, 0.0f);
    }
  }
  linear_packed(columns, positions, static_cast<int>(k), packed_kernel, cout, nullptr,
                Epilogue::kBias, out);
}

}  // namespace musiq::cpu
