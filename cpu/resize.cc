#include <algorithm>

#include "cpu/ops.h"

namespace musiq::cpu {

// Same accumulation order as TensorFlow's GatherRows / GatherColumns.
void gaussian_resize(const float* in, int in_h, int in_w, int channels,
                     const ResizePlan& rows, const ResizePlan& cols, float* tmp, float* out) {
  const int64_t in_row = int64_t{in_w} * channels;
  const int out_h = rows.out_size, out_w = cols.out_size;
#pragma omp parallel for schedule(static)
  for (int y = 0; y < out_h; ++y) {
    float* dst = tmp + y * in_row;
    std::fill(dst, dst + in_row, 0.0f);
    const int start = rows.starts[y];
    const int taps = std::min(start + rows.span, in_h) - start;
    for (int t = 0; t < taps; ++t) {
      const float w = rows.weights[size_t(y) * rows.span + t];
      const float* src = in + (start + t) * in_row;
      for (int64_t i = 0; i < in_row; ++i) dst[i] += w * src[i];
    }
  }
  const int64_t out_row = int64_t{out_w} * channels;
#pragma omp parallel for schedule(static)
  for (int y = 0; y < out_h; ++y) {
    const float* src_row = tmp + y * in_row;
    for (int x = 0; x < out_w; ++x) {
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

}  // namespace musiq::cpu
