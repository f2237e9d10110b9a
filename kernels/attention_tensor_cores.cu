// attention_tensor_cores: cuda::attention for every query (Queries::kAll) under bf16 and
// tf32 (docs/precision.md), Q K^T and P V on the tensor cores through WMMA with float32
// accumulators (m16n16k16 bfloat16, m16n16k8 tf32), over the same packed sequences as the
// fp32 kernels in attention.cu (sequence z is rows [starts[z], starts[z+1])). The CLS query
// alone runs attention.cu's CLS kernels, split over the keys, at the same rounding points:
// one query row leaves a 16-row fragment 15/16 empty.
//
// Rounding points, as cpu::attention's: q after the 1/sqrt(64) scaling, k and v (bf16: as
// they are staged in shared memory; tf32: staged as floats, rounded in the fragments by
// __float_to_tf32); the logits float32; p = exp(logit - row max) in float32, summed
// unrounded, then rounded for P V; O divided by the sum at the end.
//
// Two passes over the keys instead of an online softmax: the first finds each row's max,
// the second computes p against it and accumulates P V. An online softmax would rescale O
// by exp(m_old - m_new) per row, and a fragment's elements map to rows in an unspecified
// way, so O would have to go through shared memory on every key tile; and each p would be
// rounded against a running max and rescaled afterwards, off the rounding point of
// docs/precision.md (the row's max; cpu::attention takes it over key blocks of 1,024, so
// beyond 1,024 keys it too rounds some p against a running max). The second Q K^T adds
// half again to the tensor-core work.
//
// Block: 4 warps of 16 query rows each, all of one head of one sequence; grid (query tiles,
// heads, sequences). The block stages Q once, then K (and V in the second pass) 64 keys at
// a time; each warp computes its 16 x 64 scores as four 16 x 16 accumulators, stores them
// to its own shared tile, and two lanes per row take the row's max, or its p and sum. Keys
// past the sequence are staged as zeros and masked; query rows past it are zeros and not
// written.
//
// Shared memory, rows padded to keep fragment pointers 256-bit aligned and ldm a multiple
// of 16 bytes: Q [16 warps][72], K and V [64][72] in bfloat16, per warp scores [16][68]
// floats and P [16][72] bfloat16: 54,272 bytes for 4 warps; under tf32 every tile is
// floats with rows of 68: 87,040 bytes.
#include <cuda_bf16.h>
#include <mma.h>

#include <cmath>
#include <cstdint>
#include <string>

#include "base/error.h"
#include "kernels/attention_tensor_cores.cuh"
#include "kernels/cuda_check.h"
#include "kernels/dynamic_shared.cuh"

namespace musiq::cuda {
namespace {

using namespace nvcuda;

constexpr int kHeadDim = 64;
constexpr int kTileK = 64;                   // keys per staged tile
constexpr int kWarpRows = 16;                // query rows per warp: a fragment's M
constexpr int kWarps = 4;                    // 64 query rows per block
constexpr int kBlockRows = kWarps * kWarpRows;
constexpr int kScoreLd = kTileK + 4;         // a warp's float scores (and, at the end, O)
constexpr int kColumnsPerLane = kTileK / 2;  // two lanes per row of scores
static_assert(kHeadDim == kTileK, "the scores tile doubles as the output tile");

// What a precision stores in shared memory and gives the tensor cores.
template <Precision>
struct Inputs;
template <>
struct Inputs<Precision::kBf16> {
  using Stored = __nv_bfloat16;
  using Fragment = __nv_bfloat16;
  static constexpr int kK = 16;             // the product's K per mma_sync
  static constexpr int kLd = kHeadDim + 8;  // padded rows: 144 bytes
  __device__ static Stored store(float x) { return __float2bfloat16_rn(x); }
  template <class F>
  __device__ static void round(F&) {}  // stored as bfloat16 already
};

template <>
struct Inputs<Precision::kTf32> {
  using Stored = float;
  using Fragment = wmma::precision::tf32;
  static constexpr int kK = 8;
  static constexpr int kLd = kHeadDim + 4;  // padded rows: 272 bytes
  __device__ static Stored store(float x) { return x; }
  // Rounded in the fragment, after the load, as WMMA asks of tf32 inputs.
  template <class F>
  __device__ static void round(F& f) {
    for (int i = 0; i < f.num_elements; ++i) f.x[i] = wmma::__float_to_tf32(f.x[i]);
  }
};

template <Precision P>
constexpr size_t shared_bytes() {
  using S = typename Inputs<P>::Stored;
  constexpr int ld = Inputs<P>::kLd;
  constexpr size_t rows = kBlockRows;
  return (rows + 2 * kTileK) * ld * sizeof(S) + rows * kScoreLd * sizeof(float) +
         rows * ld * sizeof(S);
}

__device__ __forceinline__ float4 load4(const float* p) {
  return *reinterpret_cast<const float4*>(p);
}

// rows x 64 floats from src (rows ld apart; rows at or past `valid` as zeros), times
// `scale`, into dst as Stored values, by all of the block's threads.
template <class In>
__device__ void stage(const float* src, int64_t ld, int64_t first, int rows, int64_t valid,
                      float scale, typename In::Stored* dst) {
  constexpr int kVecs = kHeadDim / 4;
  for (int idx = threadIdx.x; idx < rows * kVecs; idx += blockDim.x) {
    const int r = idx / kVecs, d = idx % kVecs * 4;
    const int64_t row = first + r;
    const float4 v = row < valid ? load4(src + row * ld + d) : make_float4(0, 0, 0, 0);
    typename In::Stored* to = dst + r * In::kLd + d;
    to[0] = In::store(__fmul_rn(v.x, scale));
    to[1] = In::store(__fmul_rn(v.y, scale));
    to[2] = In::store(__fmul_rn(v.z, scale));
    to[3] = In::store(__fmul_rn(v.w, scale));
  }
}

template <Precision P>
using FragmentA = wmma::fragment<wmma::matrix_a, 16, 16, Inputs<P>::kK,
                                 typename Inputs<P>::Fragment, wmma::row_major>;
template <Precision P, class Layout>
using FragmentB =
    wmma::fragment<wmma::matrix_b, 16, 16, Inputs<P>::kK, typename Inputs<P>::Fragment, Layout>;
template <Precision P>
using Accumulator = wmma::fragment<wmma::accumulator, 16, 16, Inputs<P>::kK, float>;

// The warp's 16 x 64 logits q K^T into scores (K's rows are the product's columns: a
// column-major B).
template <Precision P>
__device__ void logits(const FragmentA<P> (&q)[kHeadDim / Inputs<P>::kK],
                       const typename Inputs<P>::Stored* ks, float* scores) {
  using In = Inputs<P>;
  for (int n = 0; n < kTileK / 16; ++n) {
    Accumulator<P> acc;
    wmma::fill_fragment(acc, 0.0f);
    for (int s = 0; s < kHeadDim / In::kK; ++s) {
      FragmentB<P, wmma::col_major> k;
      wmma::load_matrix_sync(k, ks + n * 16 * In::kLd + s * In::kK, In::kLd);
      In::round(k);
      wmma::mma_sync(acc, q[s], k, acc);
    }
    wmma::store_matrix_sync(scores + n * 16, acc, kScoreLd, wmma::mem_row_major);
  }
}

template <Precision P>
__global__ void __launch_bounds__(kWarps * 32)
    attention_tc_kernel(const float* __restrict__ qkv, const int64_t* __restrict__ starts,
                        int heads, float scale, float* __restrict__ out) {
  using In = Inputs<P>;
  using S = typename In::Stored;
  extern __shared__ __align__(128) float smem[];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  S* qs = reinterpret_cast<S*>(smem);  // [kBlockRows][kLd]
  S* ks = qs + kBlockRows * In::kLd;   // [kTileK][kLd]
  S* vs = ks + kTileK * In::kLd;       // [kTileK][kLd]
  float* scores = reinterpret_cast<float*>(vs + kTileK * In::kLd) +
                  warp * kWarpRows * kScoreLd;  // this warp's [16][kScoreLd]
  S* ps = reinterpret_cast<S*>(reinterpret_cast<float*>(vs + kTileK * In::kLd) +
                               kBlockRows * kScoreLd) +
          warp * kWarpRows * In::kLd;  // this warp's [16][kLd]

  const int64_t start = starts[blockIdx.z], len = starts[blockIdx.z + 1] - start;
  const int64_t q0 = int64_t{blockIdx.x} * kBlockRows;
  if (q0 >= len) return;  // the whole block: no barrier is skipped by part of it
  const int head = blockIdx.y, hidden = heads * kHeadDim;
  const int64_t ld = 3 * int64_t{hidden};
  const float* q_base = qkv + start * ld + int64_t{head} * kHeadDim;
  const float* k_base = q_base + hidden;
  const float* v_base = q_base + 2 * int64_t{hidden};

  stage<In>(q_base, ld, q0, kBlockRows, len, scale, qs);
  __syncthreads();
  // A warp whose rows are all past the sequence only helps stage K and V.
  const bool active = q0 + warp * kWarpRows < len;
  FragmentA<P> q[kHeadDim / In::kK];
  if (active)
    for (int s = 0; s < kHeadDim / In::kK; ++s) {
      wmma::load_matrix_sync(q[s], qs + warp * kWarpRows * In::kLd + s * In::kK, In::kLd);
      In::round(q[s]);
    }
  // This lane's share of the softmax: row lane / 2, columns c0 .. c0 + 31 of each tile.
  const int r = lane / 2, c0 = lane % 2 * kColumnsPerLane;

  float m = -INFINITY;
  for (int64_t k0 = 0; k0 < len; k0 += kTileK) {
    __syncthreads();  // the previous tile of K is no longer read
    stage<In>(k_base, ld, k0, kTileK, len, 1.0f, ks);
    __syncthreads();
    if (!active) continue;
    logits<P>(q, ks, scores);
    __syncwarp();
    for (int c = c0; c < c0 + kColumnsPerLane && k0 + c < len; ++c)
      m = fmaxf(m, scores[r * kScoreLd + c]);
  }
  // The max to subtract: 0 while every logit is -inf (no NaN from -inf - -inf).
  if (active) m = fmaxf(m, __shfl_xor_sync(0xFFFFFFFFu, m, 1));
  const float m_use = m == -INFINITY ? 0.0f : m;

  float l = 0.0f;
  Accumulator<P> o[kHeadDim / 16];
  if (active)
    for (auto& f : o) wmma::fill_fragment(f, 0.0f);
  for (int64_t k0 = 0; k0 < len; k0 += kTileK) {
    __syncthreads();  // the previous tiles of K and V are no longer read
    stage<In>(k_base, ld, k0, kTileK, len, 1.0f, ks);
    stage<In>(v_base, ld, k0, kTileK, len, 1.0f, vs);
    __syncthreads();
    if (!active) continue;
    logits<P>(q, ks, scores);
    __syncwarp();
    for (int c = c0; c < c0 + kColumnsPerLane; ++c) {
      const float p = k0 + c < len ? expf(scores[r * kScoreLd + c] - m_use) : 0.0f;
      l += p;
      ps[r * In::kLd + c] = In::store(p);
    }
    __syncwarp();
    for (int s = 0; s < kTileK / In::kK; ++s) {
      FragmentA<P> p;
      wmma::load_matrix_sync(p, ps + s * In::kK, In::kLd);
      In::round(p);
      for (int n = 0; n < kHeadDim / 16; ++n) {
        FragmentB<P, wmma::row_major> v;
        wmma::load_matrix_sync(v, vs + s * In::kK * In::kLd + n * 16, In::kLd);
        In::round(v);
        wmma::mma_sync(o[n], p, v, o[n]);
      }
    }
  }
  if (!active) return;

  for (int n = 0; n < kHeadDim / 16; ++n)
    wmma::store_matrix_sync(scores + n * 16, o[n], kScoreLd, wmma::mem_row_major);
  __syncwarp();
  l += __shfl_xor_sync(0xFFFFFFFFu, l, 1);
  const int64_t row = q0 + warp * kWarpRows + r;
  if (row >= len) return;
  const float inv = 1.0f / l;
  float* dst = out + (start + row) * hidden + int64_t{head} * kHeadDim;
  for (int c = c0; c < c0 + kColumnsPerLane; ++c) dst[c] = scores[r * kScoreLd + c] * inv;
}

template <Precision P>
void launch(const float* qkv, const int64_t* seq_starts, int sequences, int64_t longest, int heads,
            float* out, cudaStream_t stream) {
  const int64_t tiles = (longest + kBlockRows - 1) / kBlockRows;
  if (tiles > int64_t{0x7FFFFFFF})
    throw Error("attention: " + std::to_string(longest) + " query rows exceed one launch");
  const size_t bytes = shared_bytes<P>();
  allow_dynamic_shared(attention_tc_kernel<P>, bytes);
  const dim3 grid(static_cast<unsigned>(tiles), static_cast<unsigned>(heads),
                  static_cast<unsigned>(sequences));
  const float scale = 1.0f / std::sqrt(static_cast<float>(kHeadDim));  // as cpu::attention
  attention_tc_kernel<P><<<grid, kWarps * 32, bytes, stream>>>(qkv, seq_starts, heads, scale, out);
  CUDA_CHECK_LAUNCH();
}

}  // namespace

void attention_tensor_cores(const float* qkv, const int64_t* seq_starts, int sequences,
                            int64_t longest, int heads, float* out, cudaStream_t stream,
                            Precision precision) {
  if (precision == Precision::kBf16)
    launch<Precision::kBf16>(qkv, seq_starts, sequences, longest, heads, out, stream);
  else if (precision == Precision::kTf32)
    launch<Precision::kTf32>(qkv, seq_starts, sequences, longest, heads, out, stream);
  else
    throw Error("attention: no tensor-core kernel for " + precision_name(precision));
}

}  // namespace musiq::cuda
