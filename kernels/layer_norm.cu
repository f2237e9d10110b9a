// layer_norm: out[r, :] = (x[r, :] - mean) / sqrt(var + eps) * scale + bias per row, var the
// biased (population) variance, as flax's LayerNorm and cpu/layer_norm.cc compute it.
//
// Launch: one warp per row, 8 rows (256 threads) per block, grid = ceil(rows / 8). A MUSIQ
// row is 384 floats = 1.5 KB: a warp reads it in 3 float4 loads per lane and reduces with
// shuffles, with no shared memory and no __syncthreads. Rows up to 12,001 (a 12 MP photo)
// give ~1,500 blocks, enough to fill 132 SMs several times. float4 loads/stores when dim % 4
// == 0 and every pointer is 16-byte aligned, else scalar (same arithmetic, same results).
// Row offsets are int64 (rows * dim passes 2^31 for batches of large images).
//
// Numerics: mean first, then variance (two statistics passes). The mean's sum is accumulated in double (one DADD per
// element, negligible for a memory-bound kernel even where FP64 is slow), so the float
// mean is the CPU's to the last bit in practice: with float sums, a row whose |mean| is
// hundreds of times its std would lose a few ulps of the mean and, through inv_std, ~1e-4
// of the output. The variance is then accumulated in float around that mean,
// var = sum((x - mean)^2) / dim: the same biased variance as the CPU's E[x^2] - E[x]^2 in
// double, without the catastrophic cancellation that form has in float when |mean| >> std.
// inv_std is formed like the CPU's, float(1 / sqrt(double(var) + eps)), and the output
// expression uses explicit _rn intrinsics so nvcc cannot contract it into an FMA:
// (x - mean) * inv_std * scale + bias rounds exactly as the CPU's C++ does.
// Checked against the CPU in tests/gpu/layer_norm_gpu_test.cc (1e-5 abs + 1e-5 rel).
//
// Not one pass with float sums of x and x^2 shifted by x[r, 0]: it saves a pass over L1 but
// is fragile when channel 0 is an outlier channel. Three loops over the row (sum, centred
// squares, output), the 2nd and 3rd re-reading it from L1; bound by DRAM traffic of
// 2 * rows * dim * 4 bytes (12,001 x 384: 37 MB).
#include <cstdint>

#include "base/error.h"
#include "kernels/cuda_check.h"
#include "kernels/launch.cuh"
#include "kernels/ops.cuh"

namespace musiq::cuda {
namespace {

constexpr int kRowsPerBlock = 8;
constexpr int kLayerNormThreads = kRowsPerBlock * 32;

template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xFFFFFFFFu, v, offset);
  return v;
}

__device__ __forceinline__ float normalized(float v, float mean, float inv_std, float scale,
                                            float bias) {
  return __fadd_rn(__fmul_rn(__fmul_rn(__fsub_rn(v, mean), inv_std), scale), bias);
}

template <bool kVec4>
__global__ void __launch_bounds__(kLayerNormThreads)
    layer_norm_kernel(const float* __restrict__ x, int64_t rows, int dim,
                      const float* __restrict__ scale, const float* __restrict__ bias,
                      float eps, float* __restrict__ out) {
  const int lane = threadIdx.x % 32;
  const int64_t row = int64_t{blockIdx.x} * kRowsPerBlock + threadIdx.x / 32;
  if (row >= rows) return;  // whole warps leave together: the shuffles below stay full
  const float* in = x + row * dim;
  float* dst = out + row * dim;
  const int dim4 = dim / 4;
  const float4* in4 = reinterpret_cast<const float4*>(in);

  double sum = 0.0;
  if constexpr (kVec4) {
    for (int j = lane; j < dim4; j += 32) {
      const float4 v = in4[j];
      sum += double(v.x) + double(v.y) + double(v.z) + double(v.w);
    }
  } else {
    for (int j = lane; j < dim; j += 32) sum += in[j];
  }
  sum = warp_sum(sum);
  const float mean = static_cast<float>(sum / dim);

  float sq = 0.0f;
  if constexpr (kVec4) {
    for (int j = lane; j < dim4; j += 32) {
      const float4 v = in4[j];
      const float a = v.x - mean, b = v.y - mean, c = v.z - mean, d = v.w - mean;
      sq += (a * a + b * b) + (c * c + d * d);
    }
  } else {
    for (int j = lane; j < dim; j += 32) {
      const float a = in[j] - mean;
      sq += a * a;
    }
  }
  sq = warp_sum(sq);
  const double var = double(sq) / dim;
  const float inv_std = static_cast<float>(1.0 / sqrt(var + double(eps)));

  if constexpr (kVec4) {
    const float4* scale4 = reinterpret_cast<const float4*>(scale);
    const float4* bias4 = reinterpret_cast<const float4*>(bias);
    float4* dst4 = reinterpret_cast<float4*>(dst);
    for (int j = lane; j < dim4; j += 32) {
      const float4 v = in4[j], s = scale4[j], b = bias4[j];
      dst4[j] = make_float4(normalized(v.x, mean, inv_std, s.x, b.x),
                            normalized(v.y, mean, inv_std, s.y, b.y),
                            normalized(v.z, mean, inv_std, s.z, b.z),
                            normalized(v.w, mean, inv_std, s.w, b.w));
    }
  } else {
    for (int j = lane; j < dim; j += 32)
      dst[j] = normalized(in[j], mean, inv_std, scale[j], bias[j]);
  }
}

}  // namespace

void layer_norm(const float* x, int64_t rows, int dim, const float* scale, const float* bias,
                float eps, float* out, cudaStream_t stream) {
  if (rows <= 0) return;
  if (dim <= 0) throw Error("layer_norm: dim must be positive, got " + std::to_string(dim));
  const int64_t blocks = (rows + kRowsPerBlock - 1) / kRowsPerBlock;
  if (blocks > int64_t{0x7FFFFFFF})
    throw Error("layer_norm: " + std::to_string(rows) + " rows exceed one launch");
  const bool vec4 = dim % 4 == 0 && aligned16(x) && aligned16(out) && aligned16(scale) &&
                    aligned16(bias);
  if (vec4)
    layer_norm_kernel<true><<<static_cast<unsigned>(blocks), kLayerNormThreads, 0, stream>>>(
        x, rows, dim, scale, bias, eps, out);
  else
    layer_norm_kernel<false><<<static_cast<unsigned>(blocks), kLayerNormThreads, 0, stream>>>(
        x, rows, dim, scale, bias, eps, out);
  CUDA_CHECK_LAUNCH();
}

}  // namespace musiq::cuda
