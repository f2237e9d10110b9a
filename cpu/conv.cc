#include <algorithm>
#include <cstdint>
#include <vector>

#include "base/op_arguments.h"
#include "cpu/bf16_gemm.h"
#include "cpu/gemm.h"
#include "cpu/isa.h"
#include "cpu/ops.h"
#include "cpu/parallel_for.h"

namespace musiq::cpu {

void conv2d(const float* in, const Conv2dShape& shape, const float* kernel, float* columns,
            float* out) {
  conv2d_packed(in, shape,
                packed_for_call(kernel, static_cast<int>(shape.window()), shape.out_channels),
                columns, out);
}

namespace {

// The input of `s` into `padded` [n, hp, wp, cin]: each image at (pad_top, pad_left), zeros
// around it, cut where no window reaches; the copied values rounded as products' inputs at
// `precision` (zeros stay zeros). Returns the windows over it.
ConvWindows pad_input(const float* in, const Conv2dShape& s, Precision precision,
                      float* padded) {
  const int hp = (s.out_height - 1) * s.stride + s.kernel;
  const int wp = (s.out_width - 1) * s.stride + s.kernel;
  const int h = s.height, w = s.width, cin = s.in_channels, pad_top = s.pad_top;
  const int x0 = std::max(0, s.pad_left), x1 = std::min(wp, s.pad_left + w);  // of `in`
  const int64_t row = int64_t{wp} * cin;
  parallel_for(int64_t{s.batch} * hp, [&](int64_t py) {
    float* dst = padded + py * row;
    const int64_t img = py / hp;
    const int y = static_cast<int>(py % hp) - pad_top;
    if (y < 0 || y >= h || x0 >= x1) {
      std::fill_n(dst, row, 0.0f);
      return;
    }
    std::fill_n(dst, int64_t{x0} * cin, 0.0f);
    const float* src = in + ((img * h + y) * w + (x0 - s.pad_left)) * cin;
    const int64_t count = int64_t{x1 - x0} * cin;
    round_product_inputs(precision, src, count, dst + int64_t{x0} * cin);
    std::fill(dst + int64_t{x1} * cin, dst + row, 0.0f);
  });
  return {padded, hp, wp, cin, s.kernel, s.kernel, s.stride, s.out_height, s.out_width};
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
  gemm(pad_input(in, s, precision, columns), s.positions(), packed_kernel, s.out_channels, out);
}

namespace {

// The `positions` windows `w` finds as rows of `rows`, rounded to bfloat16, rows `stride`
// values apart and zero from the window's end to `stride`: the rows bf16::gemm_rounded()
// reads, written in one pass from the padded input.
void gather_windows(const ConvWindows& w, int64_t positions, int64_t stride, uint16_t* rows) {
  const int64_t run = int64_t{w.kw} * w.cin, window = w.kh * run;
  parallel_for(positions, [&](int64_t pos) {
    const int64_t img = pos / (int64_t{w.out_h} * w.out_w);
    const int64_t oy = pos / w.out_w % w.out_h, ox = pos % w.out_w;
    const float* from = w.padded + ((img * w.hp + oy * w.stride) * w.wp + ox * w.stride) * w.cin;
    uint16_t* row = rows + pos * stride;
    for (int ky = 0; ky < w.kh; ++ky)
      bf16::to_bf16_bits(from + int64_t{ky} * w.wp * w.cin, run, row + ky * run);
    std::fill(row + window, row + stride, uint16_t{0});
  });
}

}  // namespace

// As conv2d_packed(): the input padded into `columns`, then each window copied once as
// bfloat16 rows, rounded as it is copied. An im2col in floats, with its 3-float copies, and
// then bf16::gemm's rounding pass over it had taken about a seventh of a bf16 pass at
// 1024x768.
void conv2d_bf16(const float* in, const Conv2dShape& s, const uint16_t* packed_kernel,
                float* columns, float* out) {
  if (s.pointwise()) {
    linear_bf16(in, s.positions(), s.in_channels, packed_kernel, s.out_channels, nullptr,
               Epilogue::kBias, out);
    return;
  }
  check_conv2d_windows(s, columns);
  const ConvWindows windows = pad_input(in, s, Precision::kFp32, columns);
  const int window = static_cast<int>(s.window());
  const int64_t stride = bf16::rounded_stride(window);
  // Kept across calls, per thread (the stem's tiles run one on each): whole blocks of 32
  // rows, as gemm_rounded() reads them.
  thread_local std::vector<uint16_t> rows;
  rows.resize(std::max(rows.size(), size_t((s.positions() + 31) / 32 * 32 * stride)));
  gather_windows(windows, s.positions(), stride, rows.data());
  bf16::gemm_rounded(rows.data(), s.positions(), window, stride, packed_kernel, s.out_channels,
                     nullptr, false, false, out, s.out_channels);
}

}  // namespace musiq::cpu
