#include <algorithm>

#include "cpu/gemm.h"
#include "cpu/ops.h"
#include "cpu/vector_math.h"

namespace musiq::cpu {

void conv2d(const float* in, int n, int h, int w, int cin, const float* kernel, int kh, int kw,
            int cout, int stride, int pad_top, int pad_left, int out_h, int out_w,
            float* columns, float* out) {
  conv2d_packed(in, n, h, w, cin, packed_for_call(kernel, kh * kw * cin, cout), kh, kw, cout,
                stride, pad_top, pad_left, out_h, out_w, columns, out);
}

namespace {

// A convolution's input and geometry, as im2col reads them.
struct ConvInput {
  const float* in;
  int h, w, cin, kh, kw, stride, pad_top, pad_left, out_h, out_w;
};

// Rows [p0, p1) of the im2col matrix, one row per output position in (kh, kw, cin) column
// order. One kernel row's taps are contiguous in the input, (kw * cin) floats, the part
// outside the image zero. Plain loops rather than std::copy_n / fill_n, whose memmove and
// memset calls for 21 floats (conv_root, cin = 3) took a fifth of its time.
MUSIQ_VECTOR_CLONES void im2col(const ConvInput& c, int64_t p0, int64_t p1, float* columns) {
  const int64_t row = int64_t{c.kw} * c.cin, k = c.kh * row;
  for (int64_t p = p0; p < p1; ++p) {
    const int64_t img = p / (int64_t{c.out_h} * c.out_w);
    const int oy = static_cast<int>(p / c.out_w % c.out_h), ox = static_cast<int>(p % c.out_w);
    const int x0 = ox * c.stride - c.pad_left;
    // Taps inside the image, [lo, hi), as floats of the kernel row.
    const int64_t lo = int64_t{std::max(0, -x0)} * c.cin;
    const int64_t hi = int64_t{std::min(c.kw, c.w - x0)} * c.cin;
    for (int dy = 0; dy < c.kh; ++dy) {
      const int y = oy * c.stride - c.pad_top + dy;
      float* dst = columns + p * k + dy * row;
      const bool inside = y >= 0 && y < c.h && lo < hi;
      const int64_t from = inside ? lo : row, to = inside ? hi : row;
#pragma omp simd
      for (int64_t j = 0; j < from; ++j) dst[j] = 0.0f;
      if (inside) {
        const float* src = c.in + ((img * c.h + y) * c.w + x0) * c.cin + lo;
#pragma omp simd
        for (int64_t j = lo; j < hi; ++j) dst[j] = src[j - lo];
      }
#pragma omp simd
      for (int64_t j = to; j < row; ++j) dst[j] = 0.0f;
    }
  }
}

}  // namespace

// im2col and the GEMM in blocks of output positions, each block's columns multiplied while
// they are still in the core's L2: written whole first, a 4-token stem tile's columns (600 KB
// for conv_root) left the 512 KiB L2 before the GEMM read them back. The sums are the same
// products in the same order as one GEMM over all rows.
void conv2d_packed(const float* in, int n, int h, int w, int cin, const float* packed_kernel,
                   int kh, int kw, int cout, int stride, int pad_top, int pad_left, int out_h,
                   int out_w, float* columns, float* out) {
  const int64_t k = int64_t{kh} * kw * cin;
  const int64_t positions = int64_t{n} * out_h * out_w;
  if (kh == 1 && kw == 1 && stride == 1 && pad_top == 0 && pad_left == 0) {
    linear_packed(in, positions, cin, packed_kernel, cout, nullptr, Epilogue::kBias, out);
    return;
  }
  const ConvInput input{in, h, w, cin, kh, kw, stride, pad_top, pad_left, out_h, out_w};
  // About kBlockBytes of columns a block, in whole register tiles.
  constexpr int64_t kBlockBytes = 128 * 1024;
  const int64_t block = std::max<int64_t>(
      kTileRows, kBlockBytes / (k * int64_t{sizeof(float)}) / kTileRows * kTileRows);
  const int64_t blocks = (positions + block - 1) / block;
  // Inside a parallel region (a stem tile) the blocks run on this thread, and so does
  // each block's GEMM.
#pragma omp parallel for schedule(dynamic)
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t p0 = b * block, p1 = std::min(positions, p0 + block);
    im2col(input, p0, p1, columns);
    linear_packed(columns + p0 * k, p1 - p0, static_cast<int>(k), packed_kernel, cout, nullptr,
                  Epilogue::kBias, out + p0 * cout);
  }
}

}  // namespace musiq::cpu
