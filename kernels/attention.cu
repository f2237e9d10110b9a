// attention: fused multi-head self-attention with an online softmax, as cpu/attention.cc
// computes it (no mask; the query scaled by 1/sqrt(head_dim) before the dot product), but
// never materialising the len x len score matrix: a 12,001-token image would need
// 6 x 12,001^2 floats = 3.5 GB of scores per block otherwise. Packed sequences as in
// flash-attention's varlen kernels: sequence z is rows [starts[z], starts[z+1]) and attends
// to itself only. Two paths:
//
// Every query (Queries::kAll): attention_kernel, after flash-attention's forward kernel in
// plain fp32 CUDA-core code. Grid (ceil(longest / 32), heads, sequences); block = 64
// threads = a 4 x 16 grid (ty, tx). The block owns 32 query rows of one head of one
// sequence (blocks past their sequence's rows return at once); its Q tile (pre-scaled) stays
// in shared memory while it walks the keys in tiles of 64, staging K and V there.
//   Register tiles: thread (ty, tx) owns the 8 query rows 8 ty .. 8 ty + 7; of S = Q K^T
//   the columns tx + 16 j (j < 4), of O the head columns 4 tx .. 4 tx + 3. Every shared
//   load is a float4 along d (Q, K) or along the keys (P) and the head columns (V): per 4
//   steps of d (or keys) a thread does 12 float4 loads for 128 FMAs, 10.7 FMAs per load
//   instead of the 2 of a 4 x 4 tile of scalar loads. Per warp (two ty, sixteen tx) that is
//   8 broadcast Q/P loads of one wavefront and 4 K/V loads of two: 16 shared-memory cycles
//   per 128 warp FMAs, so at full FMA rate (4 warp FMAs per cycle per SM) shared memory is
//   half busy, where a 4 x 4 tile of scalar loads would need twice its bandwidth.
//   Online softmax per row (running max m, running sum l): the 16 threads sharing a row
//   are 16 consecutive lanes, so row max / row sum are 4-step xor shuffles. For each tile:
//   m' = max(m, max_j s), corr = exp(m - m'), p = exp(s - m'), l = l * corr + sum p,
//   O = O * corr + P V (P goes through shared memory, since each thread needs whole rows
//   of it). Keys past `len` score -inf (p = 0; their V rows are loaded as zeros). A row
//   whose running max is still -inf (only possible with -inf/NaN inputs) uses 0 in place
//   of the max, as flash-attention's softmax.h guards fully masked rows. O / l at the end.
//   Grid: a 1024x768 image is 919 rows (768 + 108 + 42 tokens and the CLS): 29 query tiles
//   x 6 heads = 174 blocks for the 132 SMs of an H100 (64-row tiles would give 15 x 6 = 90,
//   leaving 42 SMs idle). Shared memory: Q, K and P tiles padded to 68 floats a row
//   (float4-aligned, and 16 consecutive rows start on 8 different 4-bank groups), V 64 x 64:
//   51,200 bytes, so 4 blocks fit in an SM's 228 KB (3 with 64-row tiles' 66 KB).
//   Registers: 168 a thread (no spills), 64 threads: 43K of an SM's 64K for 4 blocks.
//
// The CLS query alone (Queries::kFirst, the last encoder block): one query row per head
// and sequence, so the work is reading K and V once (flash-decoding). cls_partial_kernel:
// grid (splits, heads, sequences), 64 threads; split s takes a contiguous range of each
// sequence's keys and writes its partial (m, l, unnormalised O) to `scratch`; thread t
// scores key t of a 64-key chunk (a float4 read of its K row), and the 64 threads then
// accumulate P V as 16 float4 column groups x 4 key lanes, merged in a fixed order.
// cls_combine_kernel: one block per head and sequence merges the splits in split order
// (M = max m_s, O = sum O_s exp(m_s - M) / sum l_s exp(m_s - M)): deterministic, no atomics.
// Splits: enough for ~264 blocks (two per H100 SM) but at least 32 keys each, at most 64:
// 919 rows, 6 heads, batch 1: 29 splits of 32 keys, 174 blocks (one block per head would
// use 6 SMs); 12,001 rows: 44 splits of 273 keys, 264 blocks.
//
// The CLS query under bf16 and tf32: the same kernels, templated on the precision, rounding
// where cpu::attention's attend_one does: q after the scaling, k and v as they are read,
// p = exp(logit - M) after the sum of the unrounded p has taken it. M must be the max of
// ALL the sequence's logits, not a split's running max: rounding p against a running max
// and rescaling it afterwards would move the rounding point. So a third kernel runs first:
// cls_max_kernel, on the same grid, writes each split's largest logit (computed by the
// same code as the partial pass, so bit for bit the same logits); cls_partial_kernel's
// blocks then start from M = the max over their sequence's splits, which never grows, so
// every rescale is by exp(0) = 1 and the merge adds the splits' l and O in split order.
// CUDA cores, not tensor cores: one query row would leave a 16-row fragment 15/16 empty,
// and the pass is bound by reading K and V.
//
// Offsets are int64 (len * 3 * hidden passes 2^31 only for ~1.9 M tokens, but the rule holds).
// The float4 loads and stores need qkv and out 16-byte aligned (checked).
//
// Every query under bf16 and tf32: attention_tensor_cores.cu takes over once the arguments
// are checked.
//
// Numerics: fp32 throughout, expf (not __expf). Differences from the CPU come from the
// summation order (tiled dot products, online sum, the split-key merge, P V accumulated
// unnormalised): ~1e-6 relative. Test bound (tests/gpu/attention_gpu_test.cc): 2e-5 abs +
// 1e-4 rel, len 1 .. 12,001.
//
// Expected time, 1024x768 at batch 1 (919 rows; 13 all-query blocks and the CLS block), on
// an H100 SXM (FP32 on CUDA cores 67 TFLOP/s = 132 SMs x 128 FMA x 2 x 1.98 GHz; 51 on PCIe;
// HBM 3.35 TB/s); no tensor cores (TF32's 10-bit mantissa is outside the accuracy budget,
// see kernels/linear.cu):
//   All queries, one encoder block: Q K^T and P V are 2 x 919^2 x 64 x 6 FMAs = 1.30 GFLOP
//   and 5.1 M expf; it reads q|k|v once (4.2 MB; the K/V tiles re-read by the 29 query tiles
//   come from the 50 MB L2) and writes 1.4 MB: 1.7 us of HBM against 19.4 us of FP32 peak
//   (25 us on PCIe), so compute-bound. The kernel's bound: 174 blocks x 2 warps = 348 warps
//   for the H100's 528 warp schedulers, one warp on most, so nothing hides a warp's latency.
//   Per 64-key tile a warp issues 4,096 FMAs, 384 float4 shared loads, ~520 instructions of
//   softmax (expf ~8 each), ~100 for the K/V tile, and waits ~800 cycles for that tile:
//   ~6,000 cycles, x 15 tiles = 90 K cycles = 45 us, 43% of peak (the FMA pipe busy 68% of
//   a warp's time, and 348 of 528 schedulers busy). 13 blocks: ~0.6 ms (peak: 0.25 ms).
//   Fuller grids (batch 16, the GPU default: 2,784 blocks, 8 warps per SM; or one
//   12,001-token photo: 2,256 blocks) hide the latency: bound by FMA issue at ~80% of peak
//   (4,096 of ~5,200 issued instructions are FMAs), ~24 us per image and block at 1024x768.
//   CLS block: 6 x 919 x 64 x 2 FMAs is nothing; it reads K and V once, 2.8 MB: 0.8 us of
//   HBM (less from L2, where the qkv GEMM just wrote them). 174 blocks of one 32-key chunk
//   are bound by latency (two dependent memory round trips, the merge's launch): ~3-5 us,
//   against ~25-40 us for one block per head walking all 15 key tiles. Under bf16 and tf32
//   the max pass adds a launch and one round trip: ~5-8 us, where one warp per head
//   walking the 15 key tiles twice would take ~45 us.
//   CLS block at 12,001 keys: K and V of one head are 12,001 x 64 x 4 B = 3.1 MB each,
//   36.9 MB for the 6 heads, each read once: 11 us of HBM. 264 blocks, 2 per SM, each
//   walking 5 chunks of 64 keys (a dependent round trip of ~1 us each) hold ~32 KB of
//   loads in flight per SM: about what 3.35 TB/s needs, so ~11-14 us with the merge.
//   Under bf16 and tf32 the max pass reads K once more (18.4 MB, 5.5 us; the partial pass
//   then finds much of K in the 50 MB L2): ~15-20 us, where 6 warps on 6 of the 132 SMs
//   walking 188 key tiles twice would take ~0.5 ms.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include <cuda_bf16.h>
#include <mma.h>

#include "base/error.h"
#include "kernels/attention_tensor_cores.cuh"
#include "kernels/cuda_check.h"
#include "kernels/dynamic_shared.cuh"
#include "kernels/ops.cuh"

namespace musiq::cuda {
namespace {

constexpr int kHeadDim = 64;

// All queries: 32 x 64 tiles, 64 threads with 8 x 4 register tiles.
constexpr int kTileQ = 32;           // query rows per block
constexpr int kTileK = 64;           // keys per shared-memory tile
constexpr int kRowsPerThread = 8;    // of S and O
constexpr int kColsPerThread = 4;    // of S (strided by 16) and of O (consecutive)
constexpr int kColGroups = 16;       // tx
constexpr int kThreads = kTileQ / kRowsPerThread * kColGroups;  // 64
constexpr int kStride = kHeadDim + 4;  // padded row of the Q / K / P tiles
constexpr size_t kSharedBytes =
    sizeof(float) * (size_t{kTileQ} * kStride + size_t{kTileK} * kStride +
                     size_t{kTileK} * kHeadDim + size_t{kTileQ} * kStride);
static_assert(kTileK == kColGroups * kColsPerThread && kHeadDim == kColGroups * kColsPerThread,
              "the thread layout assumes 64 keys and 64 head columns");
static_assert(kColGroups == 16, "a row's threads are the 16 lanes of a half warp (row_max)");

// The CLS query alone: splits of the keys, then a merge.
constexpr int kClsThreads = 64;                          // one per key of a chunk, per head column
constexpr int kClsColGroups = kHeadDim / 4;              // float4 column groups of V
constexpr int kClsKeyLanes = kClsThreads / kClsColGroups;  // keys accumulated side by side
constexpr int kPartial = 2 + kHeadDim;                   // a split's m, l, O
constexpr int kClsTargetBlocks = 264;                    // two per SM of an H100
constexpr int kClsMinKeysPerSplit = 32;
constexpr int kClsMaxSplits = 64;
static_assert(kClsThreads == kHeadDim && kClsThreads % 32 == 0, "thread t holds column t");

__device__ __forceinline__ float4 load4(const float* p) {
  return *reinterpret_cast<const float4*>(p);
}
__device__ __forceinline__ void store4(float* p, float4 v) { *reinterpret_cast<float4*>(p) = v; }
// acc + a.b, added in the order x, y, z, w (ascending d).
__device__ __forceinline__ float dot4(float4 a, float4 b, float acc) {
  acc = fmaf(a.x, b.x, acc);
  acc = fmaf(a.y, b.y, acc);
  acc = fmaf(a.z, b.z, acc);
  return fmaf(a.w, b.w, acc);
}
__device__ __forceinline__ float4 scaled(float4 v, float scale) {
  return make_float4(__fmul_rn(v.x, scale), __fmul_rn(v.y, scale), __fmul_rn(v.z, scale),
                     __fmul_rn(v.w, scale));
}
// The running max to subtract: 0 while every score so far is -inf (no NaN from -inf - -inf).
__device__ __forceinline__ float usable_max(float m) { return m == -INFINITY ? 0.0f : m; }

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
                     int heads, float scale, float* __restrict__ out) {
  extern __shared__ float smem[];
  float* qs = smem;                    // [kTileQ][kStride]
  float* ks = qs + kTileQ * kStride;   // [kTileK][kStride]
  float* vs = ks + kTileK * kStride;   // [kTileK][kHeadDim]
  float* ps = vs + kTileK * kHeadDim;  // [kTileQ][kStride]

  const int64_t start = starts[blockIdx.z], len = starts[blockIdx.z + 1] - start;
  const int64_t q0 = int64_t{blockIdx.x} * kTileQ;
  if (q0 >= len) return;  // the whole block: no barrier is skipped by part of it
  const int tid = threadIdx.x;
  const int tx = tid % kColGroups, ty = tid / kColGroups;
  const int row0 = ty * kRowsPerThread;  // this thread's first row in the tile
  const int hidden = heads * kHeadDim;
  const int64_t ld = 3 * int64_t{hidden};
  const int head = blockIdx.y;
  const float* q_base = qkv + start * ld + int64_t{head} * kHeadDim;
  const float* k_base = q_base + hidden;
  const float* v_base = q_base + 2 * int64_t{hidden};
  constexpr int kRowVecs = kHeadDim / 4;  // float4 per row

  // Q tile, scaled as the CPU scales it (one rounding: q * scale). Rows past len: zeros.
  for (int idx = tid; idx < kTileQ * kRowVecs; idx += kThreads) {
    const int r = idx / kRowVecs, d = idx % kRowVecs * 4;
    const int64_t row = q0 + r;
    store4(qs + r * kStride + d,
           row < len ? scaled(load4(q_base + row * ld + d), scale) : make_float4(0, 0, 0, 0));
  }

  float m[kRowsPerThread], l[kRowsPerThread], acc[kRowsPerThread][kColsPerThread];
#pragma unroll
  for (int i = 0; i < kRowsPerThread; ++i) {
    m[i] = -INFINITY;
    l[i] = 0.0f;
#pragma unroll
    for (int c = 0; c < kColsPerThread; ++c) acc[i][c] = 0.0f;
  }

  for (int64_t k0 = 0; k0 < len; k0 += kTileK) {
    __syncthreads();  // the previous tile's K, V and P are no longer read (and Q is written)
    for (int idx = tid; idx < kTileK * kRowVecs; idx += kThreads) {
      const int r = idx / kRowVecs, d = idx % kRowVecs * 4;
      const int64_t key = k0 + r;
      const bool valid = key < len;
      store4(ks + r * kStride + d, valid ? load4(k_base + key * ld + d) : make_float4(0, 0, 0, 0));
      store4(vs + r * kHeadDim + d,
             valid ? load4(v_base + key * ld + d) : make_float4(0, 0, 0, 0));
    }
    __syncthreads();

    // S = Q K^T for this thread's 8 rows x 4 columns (tx + 16 j).
    float s[kRowsPerThread][kColsPerThread];
#pragma unroll
    for (int i = 0; i < kRowsPerThread; ++i)
#pragma unroll
      for (int j = 0; j < kColsPerThread; ++j) s[i][j] = 0.0f;
#pragma unroll 4
    for (int d = 0; d < kHeadDim; d += 4) {
      float4 qv[kRowsPerThread], kv[kColsPerThread];
#pragma unroll
      for (int i = 0; i < kRowsPerThread; ++i) qv[i] = load4(qs + (row0 + i) * kStride + d);
#pragma unroll
      for (int j = 0; j < kColsPerThread; ++j)
        kv[j] = load4(ks + (tx + kColGroups * j) * kStride + d);
#pragma unroll
      for (int i = 0; i < kRowsPerThread; ++i)
#pragma unroll
        for (int j = 0; j < kColsPerThread; ++j) s[i][j] = dot4(qv[i], kv[j], s[i][j]);
    }
#pragma unroll
    for (int j = 0; j < kColsPerThread; ++j)
      if (k0 + tx + kColGroups * j >= len) {
#pragma unroll
        for (int i = 0; i < kRowsPerThread; ++i) s[i][j] = -INFINITY;
      }

    // Online softmax update, row by row; P to shared memory.
#pragma unroll
    for (int i = 0; i < kRowsPerThread; ++i) {
      float tile_max = s[i][0];
#pragma unroll
      for (int j = 1; j < kColsPerThread; ++j) tile_max = fmaxf(tile_max, s[i][j]);
      const float m_new = fmaxf(m[i], row_max(tile_max));
      const float m_use = usable_max(m_new);
      const float corr = expf(m[i] - m_use);
      float sum = 0.0f;
#pragma unroll
      for (int j = 0; j < kColsPerThread; ++j) {
        const float p = expf(s[i][j] - m_use);
        ps[(row0 + i) * kStride + tx + kColGroups * j] = p;
        sum += p;
      }
      l[i] = l[i] * corr + row_sum(sum);
      m[i] = m_new;
#pragma unroll
      for (int c = 0; c < kColsPerThread; ++c) acc[i][c] *= corr;
    }
    __syncthreads();  // P complete

    // O += P V for this thread's 8 rows x 4 head columns (4 tx ..), 4 keys at a time.
#pragma unroll 2
    for (int k = 0; k < kTileK; k += 4) {
      float4 pv[kRowsPerThread], vv[4];
#pragma unroll
      for (int i = 0; i < kRowsPerThread; ++i) pv[i] = load4(ps + (row0 + i) * kStride + k);
#pragma unroll
      for (int t = 0; t < 4; ++t) vv[t] = load4(vs + (k + t) * kHeadDim + kColsPerThread * tx);
#pragma unroll
      for (int i = 0; i < kRowsPerThread; ++i) {
        const float p[4] = {pv[i].x, pv[i].y, pv[i].z, pv[i].w};
#pragma unroll
        for (int t = 0; t < 4; ++t) {
          acc[i][0] = fmaf(p[t], vv[t].x, acc[i][0]);
          acc[i][1] = fmaf(p[t], vv[t].y, acc[i][1]);
          acc[i][2] = fmaf(p[t], vv[t].z, acc[i][2]);
          acc[i][3] = fmaf(p[t], vv[t].w, acc[i][3]);
        }
      }
    }
  }

#pragma unroll
  for (int i = 0; i < kRowsPerThread; ++i) {
    const int64_t row = q0 + row0 + i;
    if (row >= len) continue;
    const float inv = 1.0f / l[i];
    float* dst = out + (start + row) * hidden + int64_t{head} * kHeadDim + kColsPerThread * tx;
    store4(dst, make_float4(acc[i][0] * inv, acc[i][1] * inv, acc[i][2] * inv, acc[i][3] * inv));
  }
}

// Max / sum over the block's kClsThreads threads, the same value in every thread. `part`
// holds one float per warp; the trailing barrier lets the next call reuse it.
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1)
    v = fmaxf(v, __shfl_xor_sync(0xFFFFFFFFu, v, offset));
  return v;
}
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xFFFFFFFFu, v, offset);
  return v;
}
__device__ float block_max(float v, float* part) {
  v = warp_max(v);
  if (threadIdx.x % 32 == 0) part[threadIdx.x / 32] = v;
  __syncthreads();
  float r = part[0];
  for (int w = 1; w < kClsThreads / 32; ++w) r = fmaxf(r, part[w]);
  __syncthreads();
  return r;
}
__device__ float block_sum(float v, float* part) {
  v = warp_sum(v);
  if (threadIdx.x % 32 == 0) part[threadIdx.x / 32] = v;
  __syncthreads();
  float r = part[0];
  for (int w = 1; w < kClsThreads / 32; ++w) r += part[w];
  __syncthreads();
  return r;
}

// A product's input at precision P (docs/precision.md), as a float: rounded to bfloat16
// (ties to even) or tf32 (on a GPU ties away from zero, as the tensor-core kernel's
// conversion), or as it is.
template <Precision P>
__device__ __forceinline__ float rounded(float x) {
  if constexpr (P == Precision::kBf16)
    return __bfloat162float(__float2bfloat16_rn(x));
  else if constexpr (P == Precision::kTf32)
    return nvcuda::wmma::__float_to_tf32(x);
  else
    return x;
}
template <Precision P>
__device__ __forceinline__ float4 rounded(float4 v) {
  return make_float4(rounded<P>(v.x), rounded<P>(v.y), rounded<P>(v.z), rounded<P>(v.w));
}

// What the CLS block (split blockIdx.x of gridDim.x, head blockIdx.y, sequence blockIdx.z)
// reads: keys [begin, end) of its sequence, and the head's q, k and v of the sequence's
// first row (rows ld floats apart).
struct ClsSplit {
  int64_t begin, end, ld;
  const float *q, *k, *v;
};
__device__ ClsSplit cls_split(const float* qkv, const int64_t* starts, int heads) {
  const int splits = gridDim.x, split = blockIdx.x, head = blockIdx.y;
  const int64_t start = starts[blockIdx.z], len = starts[blockIdx.z + 1] - start;
  const int64_t per_split = (len + splits - 1) / splits;
  const int64_t begin = split * per_split < len ? split * per_split : len;
  const int64_t end = begin + per_split < len ? begin + per_split : len;
  const int hidden = heads * kHeadDim;
  const int64_t ld = 3 * int64_t{hidden};
  const float* q = qkv + start * ld + int64_t{head} * kHeadDim;
  return {begin, end, ld, q, q + hidden, q + 2 * int64_t{hidden}};
}

// Where the block's sequence and head start among per-split records laid out
// [sequences][heads][splits]: its own record is that plus blockIdx.x.
__device__ int64_t cls_first_split(int heads) {
  return (int64_t{blockIdx.z} * heads + blockIdx.y) * gridDim.x;
}

// The CLS query, scaled then rounded as cpu::attention does, into q [kHeadDim] (zeros for
// an empty split, whose sequence may have no rows to read).
template <Precision P>
__device__ void load_cls_query(const ClsSplit& s, float scale, float* q) {
  q[threadIdx.x] = s.begin < s.end ? rounded<P>(__fmul_rn(s.q[threadIdx.x], scale)) : 0.0f;
  __syncthreads();
}

// The logit of the key at k_row: q . k with k rounded, summed in float32 in ascending d.
template <Precision P>
__device__ __forceinline__ float cls_logit(const float* q, const float* k_row) {
  float s = 0.0f;
#pragma unroll
  for (int d = 0; d < kHeadDim; d += 4)
    s = dot4(make_float4(q[d], q[d + 1], q[d + 2], q[d + 3]), rounded<P>(load4(k_row + d)), s);
  return s;
}

// Under bf16 and tf32, a split's largest logit: maxes [sequences][heads][splits].
template <Precision P>
__global__ void __launch_bounds__(kClsThreads)
    cls_max_kernel(const float* __restrict__ qkv, const int64_t* __restrict__ starts, int heads,
                   float scale, float* __restrict__ maxes) {
  __shared__ float q[kHeadDim];
  __shared__ float part[kClsThreads / 32];
  const ClsSplit s = cls_split(qkv, starts, heads);
  load_cls_query<P>(s, scale, q);
  float m = -INFINITY;
  for (int64_t key = s.begin + threadIdx.x; key < s.end; key += kClsThreads)
    m = fmaxf(m, cls_logit<P>(q, s.k + key * s.ld));
  m = block_max(m, part);
  if (threadIdx.x == 0) maxes[cls_first_split(heads) + blockIdx.x] = m;
}

// One split of the CLS query's keys: partials [sequences][heads][splits][kPartial]. `maxes`
// null (fp32): p against a running max, the sums rescaled as it grows. Otherwise the splits'
// maxes from cls_max_kernel: p = exp(logit - M) against the sequence's max M from the
// start, rounded after the exp as the CPU rounds it (a rescale after the rounding would
// move that point); m stays M, so every rescale is by exp(0) = 1 and the merge adds the
// splits' partials as they are.
template <Precision P>
__global__ void __launch_bounds__(kClsThreads)
    cls_partial_kernel(const float* __restrict__ qkv, const int64_t* __restrict__ starts, int heads,
                       float scale, const float* __restrict__ maxes, float* __restrict__ partials) {
  __shared__ float q[kHeadDim];
  __shared__ float p[kClsThreads];
  __shared__ float o[kClsKeyLanes][kHeadDim];
  __shared__ float part[kClsThreads / 32];

  const ClsSplit split = cls_split(qkv, starts, heads);
  const int64_t begin = split.begin, end = split.end, ld = split.ld;
  const int tid = threadIdx.x;
  load_cls_query<P>(split, scale, q);

  const int group = tid % kClsColGroups, key_lane = tid / kClsColGroups;
  float m = -INFINITY, l = 0.0f;
  if (maxes != nullptr) {
    const float* split_maxes = maxes + cls_first_split(heads);
    for (unsigned i = 0; i < gridDim.x; ++i) m = fmaxf(m, split_maxes[i]);
  }
  float4 acc = make_float4(0, 0, 0, 0);
  for (int64_t c0 = begin; c0 < end; c0 += kClsThreads) {
    const int64_t key = c0 + tid;
    const float s = key < end ? cls_logit<P>(q, split.k + key * ld) : -INFINITY;
    const float m_new = fmaxf(m, block_max(s, part));
    const float m_use = usable_max(m_new);
    const float corr = expf(m - m_use);
    const float pk = expf(s - m_use);
    p[tid] = rounded<P>(pk);
    l = l * corr + block_sum(pk, part);  // its barriers also publish p
    m = m_new;
    acc = make_float4(acc.x * corr, acc.y * corr, acc.z * corr, acc.w * corr);
    const int keys = end - c0 < kClsThreads ? static_cast<int>(end - c0) : kClsThreads;
    for (int k = key_lane; k < keys; k += kClsKeyLanes) {
      const float4 v = rounded<P>(load4(split.v + (c0 + k) * ld + 4 * group));
      acc.x = fmaf(p[k], v.x, acc.x);
      acc.y = fmaf(p[k], v.y, acc.y);
      acc.z = fmaf(p[k], v.z, acc.z);
      acc.w = fmaf(p[k], v.w, acc.w);
    }
    __syncthreads();  // p is rewritten by the next chunk
  }
  o[key_lane][4 * group] = acc.x;
  o[key_lane][4 * group + 1] = acc.y;
  o[key_lane][4 * group + 2] = acc.z;
  o[key_lane][4 * group + 3] = acc.w;
  __syncthreads();
  float sum = o[0][tid];
  for (int lane = 1; lane < kClsKeyLanes; ++lane) sum += o[lane][tid];
  float* record = partials + (cls_first_split(heads) + blockIdx.x) * kPartial;
  record[2 + tid] = sum;
  if (tid == 0) {
    record[0] = m;
    record[1] = l;
  }
}

// Merges a head's splits in split order into out [sequences, hidden].
__global__ void __launch_bounds__(kClsThreads)
    cls_combine_kernel(const float* __restrict__ partials, const int64_t* __restrict__ starts,
                       int heads, int splits, float* __restrict__ out) {
  if (starts[blockIdx.y + 1] == starts[blockIdx.y]) return;  // no rows, no CLS query
  const int head = blockIdx.x, tid = threadIdx.x;
  const float* records = partials + (int64_t{blockIdx.y} * heads + head) * splits * kPartial;
  float m = -INFINITY;
  for (int s = 0; s < splits; ++s) m = fmaxf(m, records[s * kPartial]);
  const float m_use = usable_max(m);
  float l = 0.0f, o = 0.0f;
  for (int s = 0; s < splits; ++s) {
    const float* r = records + s * kPartial;
    const float w = expf(r[0] - m_use);  // 0 for an empty split (m = -inf)
    l = fmaf(r[1], w, l);
    o = fmaf(r[2 + tid], w, o);
  }
  out[int64_t{blockIdx.y} * heads * kHeadDim + int64_t{head} * kHeadDim + tid] = o * (1.0f / l);
}

// Splits of the CLS query's keys for `sequences` sequences of up to `longest` rows.
int cls_splits(int64_t longest, int sequences, int heads) {
  const int64_t blocks_per_split = int64_t{heads} * sequences;
  const int64_t for_grid = (kClsTargetBlocks + blocks_per_split - 1) / blocks_per_split;
  const int64_t for_keys = (longest + kClsMinKeysPerSplit - 1) / kClsMinKeysPerSplit;
  return static_cast<int>(std::clamp<int64_t>(std::min(for_grid, for_keys), 1, kClsMaxSplits));
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

void attention_all(const float* qkv, const int64_t* seq_starts, int sequences, int64_t longest,
                   int heads, float scale, float* out, cudaStream_t stream) {
  const int64_t q_tiles = (longest + kTileQ - 1) / kTileQ;
  if (q_tiles > int64_t{0x7FFFFFFF})
    throw Error("attention: " + std::to_string(longest) + " query rows exceed one launch");
  allow_dynamic_shared(attention_kernel, kSharedBytes);
  const dim3 grid(static_cast<unsigned>(q_tiles), static_cast<unsigned>(heads),
                  static_cast<unsigned>(sequences));
  attention_kernel<<<grid, kThreads, kSharedBytes, stream>>>(qkv, seq_starts, heads, scale, out);
  CUDA_CHECK_LAUNCH();
}

// The CLS query alone at precision P. Scratch: the partials [sequences][heads][splits]
// [kPartial], then under bf16 and tf32 the splits' maxes [sequences][heads][splits].
template <Precision P>
void attention_first(const float* qkv, const int64_t* seq_starts, int sequences, int64_t longest,
                     int heads, float scale, float* scratch, float* out, cudaStream_t stream) {
  if (scratch == nullptr) throw Error("attention: Queries::kFirst needs its scratch");
  const int splits = cls_splits(longest, sequences, heads);
  const dim3 grid(static_cast<unsigned>(splits), static_cast<unsigned>(heads),
                  static_cast<unsigned>(sequences));
  float* maxes = nullptr;
  if constexpr (P != Precision::kFp32) {
    maxes = scratch + int64_t{sequences} * heads * splits * kPartial;
    cls_max_kernel<P><<<grid, kClsThreads, 0, stream>>>(qkv, seq_starts, heads, scale, maxes);
    CUDA_CHECK_LAUNCH();
  }
  cls_partial_kernel<P>
      <<<grid, kClsThreads, 0, stream>>>(qkv, seq_starts, heads, scale, maxes, scratch);
  CUDA_CHECK_LAUNCH();
  const dim3 merge_grid(static_cast<unsigned>(heads), static_cast<unsigned>(sequences));
  cls_combine_kernel<<<merge_grid, kClsThreads, 0, stream>>>(scratch, seq_starts, heads, splits,
                                                             out);
  CUDA_CHECK_LAUNCH();
}

}  // namespace

int64_t attention_scratch_floats(int sequences, int heads) {
  if (sequences <= 0 || heads <= 0) return 0;
  const int64_t most_keys = int64_t{kClsMaxSplits} * kClsMinKeysPerSplit;
  return int64_t{sequences} * heads * cls_splits(most_keys, sequences, heads) * (kPartial + 1);
}

void attention(const float* qkv, const int64_t* seq_starts, int sequences, int64_t longest,
               int heads, int head_dim, Queries queries, float* scratch, float* out,
               cudaStream_t stream, Precision precision) {
  if (sequences <= 0 || longest <= 0) return;
  if (head_dim != kHeadDim)
    throw Error("attention: head_dim " + std::to_string(head_dim) +
                " is not supported by the GPU kernel (only " + std::to_string(kHeadDim) + ")");
  if (heads <= 0 || heads > 65535 || sequences > 65535)
    throw Error("attention: " + std::to_string(heads) + " heads, " + std::to_string(sequences) +
                " sequences out of range (1 .. 65535 each)");
  if (!aligned16(qkv) || !aligned16(out))
    throw Error("attention: qkv and out must be 16-byte aligned (float4 access)");
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));  // as cpu::attention
  if (queries == Queries::kAll) {
    if (precision == Precision::kFp32)
      attention_all(qkv, seq_starts, sequences, longest, heads, scale, out, stream);
    else
      attention_tensor_cores(qkv, seq_starts, sequences, longest, heads, out, stream, precision);
  } else if (precision == Precision::kFp32) {
    attention_first<Precision::kFp32>(qkv, seq_starts, sequences, longest, heads, scale, scratch,
                                      out, stream);
  } else if (precision == Precision::kBf16) {
    attention_first<Precision::kBf16>(qkv, seq_starts, sequences, longest, heads, scale, scratch,
                                      out, stream);
  } else {
    attention_first<Precision::kTf32>(qkv, seq_starts, sequences, longest, heads, scale, scratch,
                                      out, stream);
  }
}

}  // namespace musiq::cuda
