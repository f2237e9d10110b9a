// conv2d: NHWC convolution with an HWIO kernel, no bias, explicit top/left padding, as
// cpu/conv.cc. A 1x1 / stride 1 / unpadded conv is one GEMM on the input (linear, kBias
// without a bias). Every other shape in fp32 is the implicit-GEMM kernel
// (kernels/conv_implicit_gemm.cu), which reads its windows from the input in place and
// leaves `columns` untouched. Under bf16 and tf32 the products run on tensor cores through
// cuBLASLt, whose operand layouts want the windows as a matrix: im2col into `columns`
// [positions, kh*kw*cin] in (dy, dx, cin) order (the HWIO kernel read as a row-major
// [kh*kw*cin, cout] matrix), then one GEMM.
//
// im2col launch: one thread per column float (int64 index, grid-stride loop); a warp writes
// 32 consecutive floats and, inside one (dy, dx) tap, reads `cin` contiguous input floats.
// For MUSIQ's stem: conv_root (7x7/2, cin 3) has 147 floats per position, conv2 (3x3/1,
// cin 64) 576. Copies only: the columns are bit-identical to the CPU's; the GEMM differs
// from OpenBLAS in summation order (see kernels/linear.cu).
//
// Under bf16 im2col writes the columns rounded to bfloat16 itself: it touches every value
// once anyway, so the rounding costs no pass of its own (linear_bf16's), and the columns
// take half the bytes. A pointwise shape has no im2col; its input is rounded into `columns`.
// tf32 is the fp32 GEMM with the compute type changed (kernels/linear.cu).
#include <cstdint>

#include "base/op_arguments.h"
#include "kernels/conv_implicit_gemm.cuh"
#include "kernels/cuda_check.h"
#include "kernels/launch.cuh"
#include "kernels/ops.cuh"

namespace musiq::cuda {
namespace {

__device__ __forceinline__ void store(float* p, float v) { *p = v; }
__device__ __forceinline__ void store(__nv_bfloat16* p, float v) { *p = __float2bfloat16_rn(v); }

// T: float, or __nv_bfloat16 (the columns rounded as they are written).
template <typename T>
__global__ void im2col_kernel(const float* __restrict__ in, int h, int w, int cin, int kh, int kw,
                              int stride, int pad_top, int pad_left, int out_h, int out_w,
                              int64_t total, T* __restrict__ columns) {
  const int64_t k = int64_t{kh} * kw * cin;
  for (int64_t i = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; i < total;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t p = i / k;                             // output position (img, oy, ox)
    const int r = static_cast<int>(i - p * k);           // (dy, dx, c)
    const int c = r % cin;
    const int dx = (r / cin) % kw;
    const int dy = r / (cin * kw);
    const int64_t img = p / (int64_t{out_h} * out_w);
    const int oy = static_cast<int>(p / out_w % out_h), ox = static_cast<int>(p % out_w);
    const int y = oy * stride - pad_top + dy, x = ox * stride - pad_left + dx;
    store(columns + i,
          (y < 0 || y >= h || x < 0 || x >= w) ? 0.0f : in[((img * h + y) * w + x) * cin + c]);
  }
}

template <typename T>
void im2col(const float* in, const Conv2dShape& s, T* columns, cudaStream_t stream) {
  const int64_t total = s.positions() * s.window();
  im2col_kernel<T><<<grid_for(total), kThreads, 0, stream>>>(
      in, s.height, s.width, s.in_channels, s.kernel, s.kernel, s.stride, s.pad_top, s.pad_left,
      s.out_height, s.out_width, total, columns);
  CUDA_CHECK_LAUNCH();
}

}  // namespace

void conv2d(const float* in, const Conv2dShape& s, const float* kernel, float* columns, float* out,
            GemmContext* gemm, cudaStream_t stream, Precision precision) {
  const int64_t positions = s.positions();
  if (positions <= 0 || s.out_channels <= 0) return;
  if (s.pointwise()) {
    linear(in, positions, s.in_channels, kernel, s.out_channels, nullptr, Epilogue::kBias, out,
           gemm, stream, precision);
    return;
  }
  check_conv2d_windows(s, columns);  // needed under fp32 too: the same errors as the CPU's
  if (precision == Precision::kFp32) return conv2d_implicit_gemm(in, s, kernel, out, stream);
  im2col(in, s, columns, stream);
  linear(columns, positions, static_cast<int>(s.window()), kernel, s.out_channels, nullptr,
         Epilogue::kBias, out, gemm, stream, precision);
}

void conv2d_bf16(const float* in, const Conv2dShape& s, const __nv_bfloat16* kernel,
                 __nv_bfloat16* columns, float* out, GemmContext* gemm, cudaStream_t stream) {
  const int64_t positions = s.positions();
  if (positions <= 0 || s.out_channels <= 0) return;
  check_conv2d_windows(s, columns);  // every shape's, the pointwise one's too
  if (s.pointwise()) {
    linear_bf16(in, positions, s.in_channels, kernel, s.out_channels, nullptr, Epilogue::kBias, out,
                columns, gemm, stream);
    return;
  }
  im2col(in, s, columns, stream);
  matmul_bf16(columns, positions, static_cast<int>(s.window()), kernel, s.out_channels, nullptr,
              Epilogue::kBias, out, gemm, stream);
}

}  // namespace musiq::cuda
