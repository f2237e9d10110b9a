// attention: fused multi-head self-attention with an online softmax, as cpu/attention.cc
// computes it (no mask; the query scaled by 1/sqrt(head_dim) before the dot product), but
// never materialising the len x len score matrix: a 12,001-token image would need
// 6 x 12,001^2 floats = 3.5 GB of scores per block otherwise. Packed sequences as in
// flash-attention's varlen kernels: sequence z is rows [starts[z], starts[z+1]) and attends
// to itself only.
//
// Organisation (after flash-attention's forward kernel, in plain fp32 CUDA-core code):
//   grid (ceil(longest q_rows / 64), heads, sequences); block = 256 threads = a 16 x 16
//   grid (ty, tx). The block owns 64 query rows of one head of one sequence (blocks past
//   their sequence's queries return at once). Its Q tile (pre-scaled) stays in shared
//   memory; it walks the keys in tiles of 64, staging K and V in shared memory.
//   Thread (ty, tx) owns query rows r_i = ty + 16 i and, per tile, the score columns
//   c_j = tx + 16 j (i, j < 4): a 4 x 4 register tile of S = Q K^T, and the output columns
//   d_j = tx + 16 j of its 4 rows: a 4 x 4 register accumulator of O.
//   Online softmax per row (running max m, running sum l): the 16 threads sharing a row
//   are 16 consecutive lanes, so row max / row sum are 4-step xor shuffles. For each tile:
//   m' = max(m, max_j s), corr = exp(m - m'), p = exp(s - m'), l = l * corr + sum p,
//   O = O * corr + P V (P goes through shared memory, since each thread needs whole rows
//   of it). Keys past `len` score -inf (p = 0; their V rows are loaded as zeros). A row
//   whose running max is still -inf (only possible with -inf/NaN inputs) uses 0 in place
//   of the max, as flash-attention's softmax.h guards fully masked rows. O / l once at the end.
//   Query rows past q_rows are computed on zeros and never stored, so Queries::kFirst (the
//   last encoder block: CLS only, q_rows = 1) launches one tile per head and sequence.
// Shared memory: Q, K and P tiles 64 x 65 floats (rows padded by one float so that threads
// reading a column of different rows hit different banks), V 64 x 64 (read along rows):
// 66,304 bytes, dynamic, above the 48 KB default, so the launch raises the kernel's limit
// (sm_80+: up to 163 KB / 227 KB per block; an H100 SM fits 3 such blocks).
// Offsets are int64 (len * 3 * hidden passes 2^31 only for ~1.9 M tokens, but the rule holds).
//
// Numerics: fp32 throughout, expf (not __expf). Differences from the CPU come from the
// summation order (tiled dot products, online sum, P V accumulated unnormalised then divided
// by l instead of multiplied by 1/l): ~1e-6 relative. Test bound
// (tests/gpu/attention_gpu_test.cc): 2e-5 abs + 1e-4 rel, len 1 .. 12,001.
//
// Bound: fp32 on CUDA cores, no tensor cores (TF32's 10-bit mantissa is outside the accuracy
// budget, see kernels/linear.cu). Per d step a thread does 8 shared-memory loads for 16 FMAs,
// so shared-memory bandwidth keeps it well below the FP32 peak; with q_rows = 1 a launch has
// only heads x sequences blocks.
#include <cmath>
#include <cstdint>
#include <string>

#include "base/error.h"
#include "kernels/cuda_check.h"
#include "kernels/ops.cuh"

namespace musiq::cuda {
namespace {

constexpr int kHeadDim = 64;
constexpr int kTileQ = 64;          // query rows per block
constexpr int kTileK = 64;          // keys per shared-memory tile
constexpr int kThreads = 256;       // 16 x 16
constexpr int kPerThread = 4;       // rows (and columns) per thread: 64 / 16
constexpr int kStride = kHeadDim + 1;  // padded row of the Q / K / P tiles
constexpr size_t kSharedBytes =
    sizeof(float) * (size_t{kTileQ} * kStride + size_t{kTileK} * kStride +
                     size_t{kTileK} * kHeadDim + size_t{kTileQ} * kStride);
static_assert(kTileK == 16 * kPerThread && kTileQ == 16 * kPerThread && kHeadDim == kTileK,
              "the thread layout assumes 64-wide tiles");

// Max / sum over the 16 lanes that share a query row (lanes 0-15 or 16-31 of a warp).
__device__ __forceinline__ float row_max(float v) {
#pragma unroll
  for (int offset = 8; offset > 0; offset >>= 1)
    v = fmaxf(v, __shfl_xor_sync(0xFFFFFFFFu, v, offset));
  return v;
}
__device__ __forceinline__ float row_sum(float v) {
#pragma unroll
  for (int offset = 8; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xFFFFFFFFu, v, offset);
  return v;
}

__global__ void __launch_bounds__(kThreads)
    attention_kernel(const float* __restrict__ qkv, const int64_t* __restrict__ starts,
                     int heads, bool first_only, float scale, float* __restrict__ out) {
  extern __shared__ float smem[];
  float* qs = smem;                    // [kTileQ][kStride]
  float* ks = qs + kTileQ * kStride;   // [kTileK][kStride]
  float* vs = ks + kTileK * kStride;   // [kTileK][kHeadDim]
  float* ps = vs + kTileK * kHeadDim;  // [kTileQ][kStride]

  const int64_t start = starts[blockIdx.z], len = starts[blockIdx.z + 1] - start;
  const int64_t q_rows = first_only ? (len > 0 ? 1 : 0) : len;
  const int64_t q0 = int64_t{blockIdx.x} * kTileQ;
  if (q0 >= q_rows) return;  // the whole block: no barrier is skipped by part of it
  const int tid = threadIdx.x;
  const int tx = tid % 16, ty = tid / 16;
  const int hidden = heads * kHeadDim;
  const int64_t ld = 3 * int64_t{hidden};
  const int head = blockIdx.y;
  const float* q_base = qkv + start * ld + int64_t{head} * kHeadDim;
  const float* k_base = q_base + hidden;
  const float* v_base = q_base + 2 * int64_t{hidden};

  // Q tile, scaled as the CPU scales it (one rounding: q * scale). Rows past q_rows: zeros.
  for (int idx = tid; idx < kTileQ * kHeadDim; idx += kThreads) {
    const int r = idx / kHeadDim, d = idx % kHeadDim;
    const int64_t row = q0 + r;
    qs[r * kStride + d] = row < q_rows ? __fmul_rn(q_base[row * ld + d], scale) : 0.0f;
  }

  float m[kPerThread], l[kPerThread], acc[kPerThread][kPerThread];
#pragma unroll
  for (int i = 0; i < kPerThread; ++i) {
    m[i] = -INFINITY;
    l[i] = 0.0f;
#pragma unroll
    for (int j = 0; j < kPerThread; ++j) acc[i][j] = 0.0f;
  }

  for (int64_t k0 = 0; k0 < len; k0 += kTileK) {
    __syncthreads();  // the previous tile's K, V and P are no longer read (and Q is written)
    for (int idx = tid; idx < kTileK * kHeadDim; idx += kThreads) {
      const int r = idx / kHeadDim, d = idx % kHeadDim;
      const int64_t key = k0 + r;
      const bool valid = key < len;
      ks[r * kStride + d] = valid ? k_base[key * ld + d] : 0.0f;
      vs[r * kHeadDim + d] = valid ? v_base[key * ld + d] : 0.0f;
    }
    __syncthreads();

    // S = Q K^T for this thread's 4 x 4 tile.
    float s[kPerThread][kPerThread];
#pragma unroll
    for (int i = 0; i < kPerThread; ++i)
#pragma unroll
      for (int j = 0; j < kPerThread; ++j) s[i][j] = 0.0f;
#pragma unroll 8
    for (int d = 0; d < kHeadDim; ++d) {
      float qv[kPerThread], kv[kPerThread];
#pragma unroll
      for (int i = 0; i < kPerThread; ++i) qv[i] = qs[(ty + 16 * i) * kStride + d];
#pragma unroll
      for (int j = 0; j < kPerThread; ++j) kv[j] = ks[(tx + 16 * j) * kStride + d];
#pragma unroll
      for (int i = 0; i < kPerThread; ++i)
#pragma unroll
        for (int j = 0; j < kPerThread; ++j) s[i][j] = fmaf(qv[i], kv[j], s[i][j]);
    }
#pragma unroll
    for (int j = 0; j < kPerThread; ++j)
      if (k0 + tx + 16 * j >= len) {
#pragma unroll
        for (int i = 0; i < kPerThread; ++i) s[i][j] = -INFINITY;
      }

    // Online softmax update, row by row; P to shared memory.
#pragma unroll
    for (int i = 0; i < kPerThread; ++i) {
      float tile_max = s[i][0];
#pragma unroll
      for (int j = 1; j < kPerThread; ++j) tile_max = fmaxf(tile_max, s[i][j]);
      const float m_new = fmaxf(m[i], row_max(tile_max));
      const float m_use = m_new == -INFINITY ? 0.0f : m_new;  // fully masked row guard
      const float corr = expf(m[i] - m_use);
      float sum = 0.0f;
#pragma unroll
      for (int j = 0; j < kPerThread; ++j) {
        const float p = expf(s[i][j] - m_use);
        ps[(ty + 16 * i) * kStride + tx + 16 * j] = p;
        sum += p;
      }
      l[i] = l[i] * corr + row_sum(sum);
      m[i] = m_new;
#pragma unroll
      for (int j = 0; j < kPerThread; ++j) acc[i][j] *= corr;
    }
    __syncthreads();  // P complete

    // O += P V for this thread's 4 rows x 4 output columns.
#pragma unroll 8
    for (int c = 0; c < kTileK; ++c) {
      float pv[kPerThread], vv[kPerThread];
#pragma unroll
      for (int i = 0; i < kPerThread; ++i) pv[i] = ps[(ty + 16 * i) * kStride + c];
#pragma unroll
      for (int j = 0; j < kPerThread; ++j) vv[j] = vs[c * kHeadDim + tx + 16 * j];
#pragma unroll
      for (int i = 0; i < kPerThread; ++i)
#pragma unroll
        for (int j = 0; j < kPerThread; ++j) acc[i][j] = fmaf(pv[i], vv[j], acc[i][j]);
    }
  }

#pragma unroll
  for (int i = 0; i < kPerThread; ++i) {
    const int64_t row = q0 + ty + 16 * i;
    if (row >= q_rows) continue;
    const float inv = 1.0f / l[i];
    const int64_t out_row = (first_only ? int64_t{blockIdx.z} : start) + row;
    float* dst = out + out_row * hidden + int64_t{head} * kHeadDim;
#pragma unroll
    for (int j = 0; j < kPerThread; ++j) dst[tx + 16 * j] = acc[i][j] * inv;
  }
}

}  // namespace

void attention(const float* qkv, const int64_t* seq_starts, int sequences, int64_t longest,
               int heads, int head_dim, Queries queries, float* out, cudaStream_t stream) {
  if (sequences <= 0 || longest <= 0) return;
  if (head_dim != kHeadDim)
    throw Error("attention: head_dim " + std::to_string(head_dim) +
                " is not supported by the GPU kernel (only " + std::to_string(kHeadDim) + ")");
  if (heads <= 0 || heads > 65535 || sequences > 65535)
    throw Error("attention: " + std::to_string(heads) + " heads, " + std::to_string(sequences) +
                " sequences out of range (1 .. 65535 each)");
  const bool first_only = queries == Queries::kFirst;
  const int64_t q_tiles = first_only ? 1 : (longest + kTileQ - 1) / kTileQ;
  if (q_tiles > int64_t{0x7FFFFFFF})
    throw Error("attention: " + std::to_string(longest) + " query rows exceed one launch");
  // Dynamic shared memory above 48 KB must be allowed per kernel; a cheap host-side call,
  // repeated on every launch so that it also holds after a device switch.
  CUDA_CHECK(cudaFuncSetAttribute(attention_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                  static_cast<int>(kSharedBytes)));
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));  // as cpu::attention
  const dim3 grid(static_cast<unsigned>(q_tiles), static_cast<unsigned>(heads),
                  static_cast<unsigned>(sequences));
  attention_kernel<<<grid, kThreads, kSharedBytes, stream>>>(qkv, seq_starts, heads, first_only,
                                                             scale, out);
  CUDA_CHECK_LAUNCH();
}

}  // namespace musiq::cuda
