// max_pool_3x3_s2: 3x3 max pool, stride 2, SAME padding (the smaller half of the padding
// before: 0 before and 1 after for MUSIQ's 16 -> 8), padding never wins; cpu/max_pool.cc.
//
// Launch: one thread per output element (n, oy, ox, channel group), 256 threads, grid-stride
// over int64 indices. Channels are innermost (NHWC), so a warp reads 32 consecutive channels
// (or 32 float4 = 128 channels) of the same input pixel: coalesced. Each input pixel is read
// by up to 4 windows; those re-reads hit L1/L2. float4 when c % 4 == 0 and both pointers are
// 16-byte aligned, else scalar. MUSIQ: [tokens, 16, 16, 64] -> [tokens, 8, 8, 64].
//
// Exactness: max is exact; the comparison is the CPU's (src > acc ? src : acc, starting
// from -inf), so even NaN inputs propagate the same way. Bit-identical to the CPU.
//
// Bound: DRAM, a read of n*h*w*c and a write of n*oh*ow*c floats (961 tokens: 63 MB + 16 MB).
#include <cstdint>

#include "kernels/cuda_check.h"
#include "kernels/launch.cuh"
#include "kernels/ops.cuh"

namespace musiq::cuda {
namespace {


__device__ __forceinline__ float max1(float src, float acc) { return src > acc ? src : acc; }

// T is float or float4; `lanes` = channels / (floats per T).
template <typename T>
__global__ void max_pool_3x3_s2_kernel(const T* __restrict__ in, int n, int h, int w,
                                       int lanes, int out_h, int out_w, int pad_top,
                                       int pad_left, T* __restrict__ out) {
  const int64_t total = int64_t{n} * out_h * out_w * lanes;
  for (int64_t i = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; i < total;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int lane = static_cast<int>(i % lanes);
    const int64_t pixel = i / lanes;  // (img, oy, ox)
    const int ox = static_cast<int>(pixel % out_w);
    const int oy = static_cast<int>(pixel / out_w % out_h);
    const int64_t img = pixel / (int64_t{out_w} * out_h);
    const float kNegInf = __int_as_float(0xff800000);  // -inf
    T acc;
    if constexpr (sizeof(T) == sizeof(float4))
      acc = make_float4(kNegInf, kNegInf, kNegInf, kNegInf);
    else
      acc = kNegInf;
    for (int dy = 0; dy < 3; ++dy) {
      const int y = oy * 2 - pad_top + dy;
      if (y < 0 || y >= h) continue;
      for (int dx = 0; dx < 3; ++dx) {
        const int xx = ox * 2 - pad_left + dx;
        if (xx < 0 || xx >= w) continue;
        const T src = in[((img * h + y) * w + xx) * lanes + lane];
        if constexpr (sizeof(T) == sizeof(float4)) {
          acc.x = max1(src.x, acc.x);
          acc.y = max1(src.y, acc.y);
          acc.z = max1(src.z, acc.z);
          acc.w = max1(src.w, acc.w);
        } else {
          acc = max1(src, acc);
        }
      }
    }
    out[i] = acc;
  }
}

}  // namespace

void max_pool_3x3_s2(const float* in, int n, int h, int w, int c, int out_h, int out_w,
                     float* out, cudaStream_t stream) {
  if (n <= 0 || c <= 0 || out_h <= 0 || out_w <= 0) return;
  // SAME: total padding (out-1)*2+3-in, the smaller half before (as cpu/max_pool.cc).
  const int pad_top = ((out_h - 1) * 2 + 3 - h) / 2;
  const int pad_left = ((out_w - 1) * 2 + 3 - w) / 2;
  const int64_t pixels = int64_t{n} * out_h * out_w;
  if (c % 4 == 0 && aligned16(in) && aligned16(out)) {
    max_pool_3x3_s2_kernel<float4><<<grid_for(pixels * (c / 4)), kThreads, 0, stream>>>(
        reinterpret_cast<const float4*>(in), n, h, w, c / 4, out_h, out_w, pad_top, pad_left,
        reinterpret_cast<float4*>(out));
  } else {
    max_pool_3x3_s2_kernel<float><<<grid_for(pixels * c), kThreads, 0, stream>>>(
        in, n, h, w, c, out_h, out_w, pad_top, pad_left, out);
  }
  CUDA_CHECK_LAUNCH();
}

}  // namespace musiq::cuda
