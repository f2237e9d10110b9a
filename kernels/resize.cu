// gaussian_resize: TensorFlow's ScaleAndTranslate (Gaussian, antialias off) applied with the
// host-computed plans of base/resize_plan.h, rows (height) first, then columns, exactly
// as cpu/resize.cc does it.
//
// Launch: two kernels, one thread per output float (int64 indices, grid-stride loops):
//   rows:    tmp[y, i] = sum_t w_y[t] * in[start_y + t, i]     i over in_w * c
//   columns: out[y, x, c] = sum_t w_x[t] * tmp[y, start_x + t, c]
// Consecutive threads take consecutive floats of a row, so both kernels read and write
// coalesced (the column pass reads up to 5 neighbouring pixels, which the cache shares).
//
// Exactness: each thread accumulates from 0.0f in tap order with __fmul_rn / __fadd_rn,
// i.e. the CPU's `dst += w * src` compiled with -ffp-contract=off: bit-identical results
// (tests/gpu/resize_gpu_test.cc checks with a zero tolerance).
//
// Bound: DRAM, reading in, writing tmp, reading tmp, writing out.
#include <cstdint>

#include "base/op_arguments.h"
#include "kernels/cuda_check.h"
#include "kernels/launch.cuh"
#include "kernels/ops.cuh"

namespace musiq::cuda {
namespace {


__global__ void resize_rows_kernel(const float* __restrict__ in, int in_h, int64_t in_row,
                                   int out_h, int span, const int32_t* __restrict__ starts,
                                   const float* __restrict__ weights, float* __restrict__ tmp) {
  const int64_t total = int64_t{out_h} * in_row;
  for (int64_t i = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; i < total;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int y = static_cast<int>(i / in_row);
    const int64_t col = i - int64_t{y} * in_row;
    const int start = starts[y];
    const int taps = min(start + span, in_h) - start;
    float acc = 0.0f;
    for (int t = 0; t < taps; ++t)
      acc = __fadd_rn(acc, __fmul_rn(weights[int64_t{y} * span + t],
                                     in[int64_t{start + t} * in_row + col]));
    tmp[i] = acc;
  }
}

__global__ void resize_cols_kernel(const float* __restrict__ tmp, int in_w, int channels,
                                   int out_h, int out_w, int span,
                                   const int32_t* __restrict__ starts,
                                   const float* __restrict__ weights, float* __restrict__ out) {
  const int64_t out_row = int64_t{out_w} * channels;
  const int64_t in_row = int64_t{in_w} * channels;
  const int64_t total = int64_t{out_h} * out_row;
  for (int64_t i = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; i < total;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t y = i / out_row;
    const int64_t rest = i - y * out_row;
    const int x = static_cast<int>(rest / channels);
    const int c = static_cast<int>(rest - int64_t{x} * channels);
    const int start = starts[x];
    const int taps = min(start + span, in_w) - start;
    const float* src = tmp + y * in_row + c;
    float acc = 0.0f;
    for (int t = 0; t < taps; ++t)
      acc = __fadd_rn(acc, __fmul_rn(weights[int64_t{x} * span + t],
                                     src[int64_t{start + t} * channels]));
    out[i] = acc;
  }
}

}  // namespace

void gaussian_resize(const float* in, int in_h, int in_w, int channels,
                     const DeviceResizePlan& rows, const DeviceResizePlan& cols, float* tmp,
                     float* out, cudaStream_t stream) {
  check_gaussian_resize(in_h, in_w, channels, rows.in_size, cols.in_size);
  const int out_h = rows.out_size, out_w = cols.out_size;
  if (out_h <= 0 || out_w <= 0 || in_h <= 0 || in_w <= 0) return;
  const int64_t in_row = int64_t{in_w} * channels;
  resize_rows_kernel<<<grid_for(int64_t{out_h} * in_row), kThreads, 0, stream>>>(
      in, in_h, in_row, out_h, rows.span, rows.starts, rows.weights, tmp);
  CUDA_CHECK_LAUNCH();
  resize_cols_kernel<<<grid_for(int64_t{out_h} * out_w * channels), kThreads, 0, stream>>>(
      tmp, in_w, channels, out_h, out_w, cols.span, cols.starts, cols.weights, out);
  CUDA_CHECK_LAUNCH();
}

}  // namespace musiq::cuda
