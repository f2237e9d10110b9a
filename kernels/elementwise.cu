// Elementwise ops: add_embeddings, add_relu and round_to_bf16 (linear's bias and GELU are
// fused into its cuBLASLt matmul, kernels/linear.cu).
//
// Launch: 256 threads, grid-stride loops over int64 element (or float4) indices, grid
// capped at 65,535 blocks. These ops are pure streaming (no reuse), so the only things that
// matter are wide, coalesced accesses and enough bytes in flight: float4 when the row length
// is a multiple of 4 and every pointer is 16-byte aligned, scalar otherwise (same
// arithmetic, same results). Row/column come from one int64 division per element (per
// float4): cheap next to the memory traffic.
//
// Exactness: each op is written as the CPU writes it, with explicit _rn intrinsics where
// nvcc could otherwise contract a multiply and an add into one FMA:
//   add_embeddings  (x + pos) + scale               bit-identical to cpu/elementwise.cc
//   add_relu        v = x + r; v > 0 ? v : 0        bit-identical
//   round_to_bf16   __float2bfloat16_rn             bit-identical to base/precision.h's rule
//                                                   (NaN aside: any NaN stays a NaN)
//
// Each op is bound by DRAM bandwidth: its floor is the bytes it reads and writes.
#include <cstdint>

#include "base/error.h"
#include "kernels/cuda_check.h"
#include "kernels/launch.cuh"
#include "kernels/ops.cuh"

namespace musiq::cuda {
namespace {


#define MUSIQ_GRID_STRIDE_LOOP(i, n)                                                   \
  for (int64_t i = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; i < (n);            \
       i += int64_t{gridDim.x} * blockDim.x)

// ---- add_embeddings -------------------------------------------------------------------

__device__ __forceinline__ float add_emb(float x, float pos, float scale) {
  return __fadd_rn(__fadd_rn(x, pos), scale);
}

template <bool kVec4>
__global__ void add_embeddings_kernel(float* __restrict__ x, int64_t rows, int dim,
                                      const int32_t* __restrict__ spatial,
                                      const int32_t* __restrict__ scale_id,
                                      const float* __restrict__ pos_table,
                                      const float* __restrict__ scale_table) {
  if constexpr (kVec4) {
    const int dim4 = dim / 4;
    float4* x4 = reinterpret_cast<float4*>(x);
    MUSIQ_GRID_STRIDE_LOOP(i, rows * dim4) {
      const int64_t r = i / dim4;
      const int j = static_cast<int>(i - r * dim4);
      const float4 p = reinterpret_cast<const float4*>(pos_table + int64_t{spatial[r]} * dim)[j];
      const float4 s =
          reinterpret_cast<const float4*>(scale_table + int64_t{scale_id[r]} * dim)[j];
      float4 v = x4[i];
      v.x = add_emb(v.x, p.x, s.x);
      v.y = add_emb(v.y, p.y, s.y);
      v.z = add_emb(v.z, p.z, s.z);
      v.w = add_emb(v.w, p.w, s.w);
      x4[i] = v;
    }
  } else {
    MUSIQ_GRID_STRIDE_LOOP(i, rows * dim) {
      const int64_t r = i / dim;
      const int j = static_cast<int>(i - r * dim);
      x[i] = add_emb(x[i], pos_table[int64_t{spatial[r]} * dim + j],
                     scale_table[int64_t{scale_id[r]} * dim + j]);
    }
  }
}

// ---- add_relu ---------------------------------------------------------------------------

__device__ __forceinline__ float add_relu1(float x, float r) {
  const float v = __fadd_rn(x, r);
  return v > 0.0f ? v : 0.0f;
}

__global__ void add_relu_vec4_kernel(float4* __restrict__ x, const float4* __restrict__ res,
                                     int64_t quads) {
  MUSIQ_GRID_STRIDE_LOOP(i, quads) {
    float4 v = x[i];
    const float4 r = res[i];
    v.x = add_relu1(v.x, r.x);
    v.y = add_relu1(v.y, r.y);
    v.z = add_relu1(v.z, r.z);
    v.w = add_relu1(v.w, r.w);
    x[i] = v;
  }
}

__global__ void add_relu_kernel(float* __restrict__ x, const float* __restrict__ res,
                                int64_t count) {
  MUSIQ_GRID_STRIDE_LOOP(i, count) x[i] = add_relu1(x[i], res[i]);
}

// ---- round_to_bf16 ----------------------------------------------------------------------

__global__ void round_to_bf16_kernel(const float* __restrict__ in, int64_t count,
                                     __nv_bfloat16* __restrict__ out) {
  MUSIQ_GRID_STRIDE_LOOP(i, count) out[i] = __float2bfloat16_rn(in[i]);
}

}  // namespace

void add_embeddings(float* x, int64_t rows, int dim, const int32_t* spatial,
                    const int32_t* scale_id, const float* pos_table, const float* scale_table,
                    cudaStream_t stream) {
  if (rows <= 0 || dim <= 0) return;
  const bool vec4 = dim % 4 == 0 && aligned16(x) && aligned16(pos_table) &&
                    aligned16(scale_table);
  if (vec4)
    add_embeddings_kernel<true><<<grid_for(rows * (dim / 4)), kThreads, 0, stream>>>(
        x, rows, dim, spatial, scale_id, pos_table, scale_table);
  else
    add_embeddings_kernel<false><<<grid_for(rows * dim), kThreads, 0, stream>>>(
        x, rows, dim, spatial, scale_id, pos_table, scale_table);
  CUDA_CHECK_LAUNCH();
}

void add_relu(float* x, const float* residual, int64_t count, cudaStream_t stream) {
  if (count <= 0) return;
  int64_t done = 0;
  if (aligned16(x) && aligned16(residual) && count >= 4) {
    const int64_t quads = count / 4;
    add_relu_vec4_kernel<<<grid_for(quads), kThreads, 0, stream>>>(
        reinterpret_cast<float4*>(x), reinterpret_cast<const float4*>(residual), quads);
    CUDA_CHECK_LAUNCH();
    done = quads * 4;
  }
  if (done < count) {
    add_relu_kernel<<<grid_for(count - done), kThreads, 0, stream>>>(x + done, residual + done,
                                                                     count - done);
    CUDA_CHECK_LAUNCH();
  }
}

void round_to_bf16(const float* in, int64_t count, __nv_bfloat16* out, cudaStream_t stream) {
  if (count <= 0) return;
  round_to_bf16_kernel<<<grid_for(count), kThreads, 0, stream>>>(in, count, out);
  CUDA_CHECK_LAUNCH();
}

}  // namespace musiq::cuda
