// gaussian_resize: TensorFlow's ScaleAndTranslate with the plans of base/resize_plan.h, rows
// then columns, each output summed from 0 in tap order without FMA, so that the result is
// TensorFlow's bit for bit. The columns' pass holds one pixel's channels in one 4-lane vector
// with its taps unrolled, so it vectorises without transposing the image.
#include <algorithm>

#include "base/op_arguments.h"
#include "cpu/isa.h"
#include "cpu/ops.h"
#include "cpu/parallel_for.h"

namespace musiq::cpu {
namespace {

// out[y, i] = sum over taps t of plan.weights[y, t] * in[plan.starts[y] + t, i] for
// i < len, y < plan.out_size; `in` has in_size rows of len floats. Each output starts
// from 0 and adds its taps in order, as TensorFlow's GatherRows does (no FMA: this file
// is built with -ffp-contract=off).
template <Isa>
__attribute__((always_inline)) inline void vertical_row_kernel(const float* in, int in_size,
                                                               int64_t len, const ResizePlan& plan,
                                                               int y, float* out) {
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
MUSIQ_DISPATCH_BY_ISA(void, vertical_row,
                      (const float* in, int in_size, int64_t len, const ResizePlan& plan, int y,
                       float* out),
                      (in, in_size, len, plan, y, out))

void vertical_pass(const float* in, int in_size, int64_t len, const ResizePlan& plan, float* out) {
  parallel_for(plan.out_size,
               [&](int64_t y) { vertical_row(in, in_size, len, plan, static_cast<int>(y), out); });
}

typedef float Vec4 __attribute__((vector_size(16), aligned(4)));

// 4 floats from `src`, or those before `end` and zeros after.
inline Vec4 load_up_to_4(const float* src, const float* end) {
  if (end - src >= 4) return *reinterpret_cast<const Vec4*>(src);
  Vec4 v = {};
  for (int64_t i = 0; i < end - src; ++i) v[i] = src[i];
  return v;
}

// `v` to `dst`, or its lanes before `end`.
inline void store_up_to_4(Vec4 v, float* dst, const float* end) {
  if (end - dst >= 4) {
    *reinterpret_cast<Vec4*>(dst) = v;
    return;
  }
  for (int64_t i = 0; i < end - dst; ++i) dst[i] = v[i];
}

// 0 + w[0] * src[0:4] + w[1] * src[channels:channels+4] + ..., kTaps terms in order.
template <int kTaps>
__attribute__((always_inline)) inline Vec4 sum_of_taps(const float* w, const float* src,
                                                       int channels) {
  Vec4 sum = {};
#pragma GCC unroll 8
  for (int t = 0; t < kTaps; ++t)
    sum += w[t] * *reinterpret_cast<const Vec4*>(src + int64_t{t} * channels);
  return sum;
}

// out [rows, cols.out_size, channels] from in [rows, in_w, channels], each output pixel's
// taps in TensorFlow's GatherColumns order. One pixel's channels (at most 4) are one
// vector: a tap loads 4 floats from its source pixel on and multiplies them by one weight,
// and the lanes past the channels hold the next pixel's values, never stored. Pixels are
// stored in order, a row's last ones only as far as the row, so a wider store is written
// again by the next pixel before anyone reads it.
void columns_pass(const float* in, int rows, int in_w, int channels, const ResizePlan& cols,
                  float* out) {
  const int64_t in_row = int64_t{in_w} * channels, out_row = int64_t{cols.out_size} * channels;
  const int32_t* starts = cols.starts.data();
  const float* weights = cols.weights.data();
  const int span = cols.span, out_w = cols.out_size;
  constexpr int kTaps = kGaussianSpan;
  parallel_for(rows, [&](int64_t y) {
    const float* src_row = in + y * in_row;
    const float* const src_end = src_row + in_row;
    float* dst = out + y * out_row;
    float* const dst_end = dst + out_row;
    for (int x = 0; x < out_w; ++x, dst += channels) {
      const int start = starts[x];
      const int taps = std::min(start + span, in_w) - start;
      const float* w = weights + int64_t{x} * span;
      const float* src = src_row + int64_t{start} * channels;
      // All of the plan's taps, their loads whole: unrolled, without a branch (which, in
      // the loop, cost more than the arithmetic).
      if (taps == kTaps && src + (kTaps - 1) * channels + 4 <= src_end) {
        store_up_to_4(sum_of_taps<kTaps>(w, src, channels), dst, dst_end);
        continue;
      }
      Vec4 sum = {};
      for (int t = 0; t < taps; ++t, src += channels) sum += w[t] * load_up_to_4(src, src_end);
      store_up_to_4(sum, dst, dst_end);
    }
  });
}

}  // namespace

void gaussian_resize(const float* in, int in_h, int in_w, int channels, const ResizePlan& rows,
                     const ResizePlan& cols, float* tmp, float* out) {
  check_gaussian_resize(in_h, in_w, channels, rows.in_size, cols.in_size);
  vertical_pass(in, in_h, int64_t{in_w} * channels, rows, tmp);
  columns_pass(tmp, rows.out_size, in_w, channels, cols, out);
}

}  // namespace musiq::cpu
