#include <algorithm>

#include "base/op_arguments.h"
#include "cpu/bf16_gemm.h"
#include "cpu/gemm.h"
#include "cpu/ops.h"

namespace musiq::cpu {

void conv2d(const float* in, const Conv2dShape& shape, const float* kernel, float* columns,
            float* out) {
  conv2d_packed(in, shape,
                packed_for_call(kernel, static_cast<int>(shape.window()), shape.out_channels),
                columns, out);
}

namespace {

// in [n, h, w, cin] into padded [n, hp, wp, cin]: each image at (pad_top, pad_left), zeros
// around it, cut where no window reaches.
// The copied values rounded as products' inputs at `precision` (zeros stay zeros).
void pad_input(const float* in, int n, int h, int w, int cin, int pad_top, int pad_left, int hp,
               int wp, Precision precision, float* padded) {
  const int x0 = std::max(0, pad_left), x1 = std::min(wp, pad_left + w);  // columns of `in`
  const int64_t row = int64_t{wp} * cin;
#pragma omp parallel for schedule(static)
  for (int64_t py = 0; py < int64_t{n} * hp; ++py) {
    float* dst = padded + py * row;
    const int64_t img = py / hp;
    const int y = static_cast<int>(py % hp) - pad_top;
    if (y < 0 || y >= h || x0 >= x1) {
      std::fill_n(dst, row, 0.0f);
      continue;
    }
    std::fill_n(dst, int64_t{x0} * cin, 0.0f);
    const float* src = in + ((img * h + y) * w + (x0 - pad_left)) * cin;
    const int64_t count = int64_t{x1 - x0} * cin;
    round_product_inputs(precision, src, count, dst + int64_t{x0} * cin);
    std::fill(dst + int64_t{x1} * cin, dst + row, 0.0f);
  }
}

}  // namespace

// The GEMM reads each output position's window in place from the padded input (an
// implicit im2col). It replaced an im2col matrix written in L2-sized blocks: at 4 tokens a
// tile, conv_root's columns were 600 KB against the padded input's 66 KB, and writing them
// took a fifth of conv_root's time.
void conv2d_packed(const float* in, const Conv2dShape& s, const float* packed_kernel,
                   float* columns, float* out, Precision precision) {
  if (s.pointwise()) {
    linear_packed(in, s.positions(), s.in_channels, packed_kernel, s.out_channels, nullptr,
                  Epilogue::kBias, out, precision);
    return;
  }
  check_conv2d_windows(s, columns);  // the padded input goes into `columns`
  const int hp = (s.out_height - 1) * s.stride + s.kernel;
  const int wp = (s.out_width - 1) * s.stride + s.kernel;
  pad_input(in, s.batch, s.height, s.width, s.in_channels, s.pad_top, s.pad_left, hp, wp,
            precision, columns);
  gemm(ConvWindows{columns, hp, wp, s.in_channels, s.kernel, s.kernel, s.stride, s.out_height,
                   s.out_width},
       s.positions(), packed_kernel, s.out_channels, out);
}

namespace {

// The windows of `s` over `in` as rows of `columns` [positions, window], in (kh, kw, cin)
// order, zero where a window leaves the image.
void im2col(const float* in, const Conv2dShape& s, float* columns) {
  const int64_t cin = s.in_channels, window = s.window();
#pragma omp parallel for schedule(static)
  for (int64_t pos = 0; pos < s.positions(); ++pos) {
    const int64_t img = pos / (int64_t{s.out_height} * s.out_width);
    const int oy = static_cast<int>(pos / s.out_width % s.out_height);
    const int ox = static_cast<int>(pos % s.out_width);
    float* row = columns + pos * window;
    for (int ky = 0; ky < s.kernel; ++ky)
      for (int kx = 0; kx < s.kernel; ++kx) {
        const int y = oy * s.stride - s.pad_top + ky, x = ox * s.stride - s.pad_left + kx;
        float* dst = row + (int64_t{ky} * s.kernel + kx) * cin;
        if (y < 0 || y >= s.height || x < 0 || x >= s.width)
          std::fill_n(dst, cin, 0.0f);
        else
          std::copy_n(in + ((img * s.height + y) * s.width + x) * cin, cin, dst);
      }
  }
}

}  // namespace

void conv2d_bf16(const float* in, const Conv2dShape& s, const uint16_t* packed_kernel,
                float* columns, float* out) {
  if (s.pointwise()) {
    linear_bf16(in, s.positions(), s.in_channels, packed_kernel, s.out_channels, nullptr,
               Epilogue::kBias, out);
    return;
  }
  check_conv2d_windows(s, columns);
  im2col(in, s, columns);
  const int window = static_cast<int>(s.window());
  bf16::gemm(columns, s.positions(), window, window, packed_kernel, s.out_channels, nullptr, false,
            false, out, s.out_channels);
}

}  // namespace musiq::cpu
