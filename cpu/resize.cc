// History (musiq_bench gaussian_resize/224x224->384x384, 2 threads, AVX2 Zen 3 VM):
//  v1: rows, then each output pixel's column taps one channel at a time: 2.8 ms.
//  v2: the rows' pass with AVX2/AVX-512 clones; and where the width shrinks by at most
//      2.5x, the columns' pass as a vertical pass too (vectorised), on the rows' output
//      transposed, its result transposed back. 224x224->384x384 2.6x faster, ->224x224
//      2.2x, 512x384->384x288 1.9x, ->224x168 1.5x; the larger photos, which keep v1's
//      columns' pass, 1.08-1.23x (transposed, 1024x768->224x168 took 1.3x longer and
//      4032x3024->384x288 2x). Its transposes as plain loops rather than std::copy_n per
//      pixel (a memmove call): a further 1.8x at 224x224, 1.4x at 512x384.
#include <algorithm>
#include <vector>

#include "cpu/ops.h"
#include "cpu/vector_math.h"  // MUSIQ_VECTOR_CLONES

namespace musiq::cpu {
namespace {

// out[y, i] = sum over taps t of plan.weights[y, t] * in[plan.starts[y] + t, i] for
// i < len, y < plan.out_size; `in` has in_size rows of len floats. Each output starts
// from 0 and adds its taps in order, as TensorFlow's GatherRows does (no FMA: this file
// is built with -ffp-contract=off).
MUSIQ_VECTOR_CLONES void vertical_pass(const float* in, int in_size, int64_t len,
                                       const ResizePlan& plan, float* out) {
#pragma omp parallel for schedule(static)
  for (int y = 0; y < plan.out_size; ++y) {
    float* dst = out + y * len;
    std::fill(dst, dst + len, 0.0f);
    const int start = plan.starts[y];
    const int taps = std::min(start + plan.span, in_size) - start;
    for (int t = 0; t < taps; ++t) {
      const float w = plan.weights[size_t(y) * plan.span + t];
      const float* src = in + (start + t) * len;
#pragma omp simd
      for (int64_t i = 0; i < len; ++i) dst[i] += w * src[i];
    }
  }
}

// out [cols, rows, channels] = in [rows, cols, channels] with rows and columns swapped,
// in square blocks of pixels so that both sides are read and written a cache line at a time.
void transpose_pixels(const float* in, int rows, int cols, int channels, float* out) {
  constexpr int kBlock = 32;
  const int row_blocks = (rows + kBlock - 1) / kBlock, col_blocks = (cols + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static)
  for (int b = 0; b < row_blocks * col_blocks; ++b) {
    const int y0 = b / col_blocks * kBlock, x0 = b % col_blocks * kBlock;
    for (int x = x0; x < std::min(cols, x0 + kBlock); ++x)
      for (int y = y0; y < std::min(rows, y0 + kBlock); ++y)
        for (int ch = 0; ch < channels; ++ch)
          out[(int64_t{x} * rows + y) * channels + ch] =
              in[(int64_t{y} * cols + x) * channels + ch];
  }
}

// The columns' pass of v1 (see the history): out [rows, cols.out_size, channels] from
// in [rows, in_w, channels], each output pixel's taps in TensorFlow's GatherColumns order.
void columns_pass(const float* in, int rows, int in_w, int channels, const ResizePlan& cols,
                  float* out) {
  const int64_t in_row = int64_t{in_w} * channels, out_row = int64_t{cols.out_size} * channels;
#pragma omp parallel for schedule(static)
  for (int y = 0; y < rows; ++y) {
    const float* src_row = in + y * in_row;
    for (int x = 0; x < cols.out_size; ++x) {
      float* dst = out + y * out_row + int64_t{x} * channels;
      const int start = cols.starts[x];
      const int taps = std::min(start + cols.span, in_w) - start;
      for (int c = 0; c < channels; ++c) dst[c] = 0.0f;
      for (int t = 0; t < taps; ++t) {
        const float w = cols.weights[size_t(x) * cols.span + t];
        const float* src = src_row + int64_t{start + t} * channels;
        for (int c = 0; c < channels; ++c) dst[c] += w * src[c];
      }
    }
  }
}

}  // namespace

void gaussian_resize(const float* in, int in_h, int in_w, int channels, const ResizePlan& rows,
                     const ResizePlan& cols, float* tmp, float* out) {
  const int out_h = rows.out_size, out_w = cols.out_size;
  vertical_pass(in, in_h, int64_t{in_w} * channels, rows, tmp);
  if (2 * int64_t{in_w} > 5 * int64_t{out_w})  // shrinking by more than 2.5x: see v2
    return columns_pass(tmp, out_h, in_w, channels, cols, out);
  // The same products in the same order as columns_pass(), on tmp transposed. Kept across
  // calls: no allocation after the largest image so far.
  thread_local std::vector<float> tmp_t, out_t;
  tmp_t.resize(size_t(out_h) * in_w * channels);
  out_t.resize(size_t(out_w) * out_h * channels);
  transpose_pixels(tmp, out_h, in_w, channels, tmp_t.data());
  vertical_pass(tmp_t.data(), in_w, int64_t{out_h} * channels, cols, out_t.data());
  transpose_pixels(out_t.data(), out_w, out_h, channels, out);
}

}  // namespace musiq::cpu
