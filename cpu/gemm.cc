// History (musiq_bench encoder/ rows, L = 919, 2 threads, AVX2 Zen 4 VM, 2026-12-01):
//  v1: cblas_sgemm (OpenBLAS 0.3.21, Haswell/Zen kernel): qkv 4.7 ms, mlp0 + GELU
//      5.2 ms, mlp1 4.6 ms, out 1.55 ms (157-177 GFLOP/s); per call it packed the weights
//      again, zeroed the output (beta = 0) and synchronised its threads while packing.
//  v2: this file: weights packed at load, 6x16 register tiles (GCC vector extensions,
//      compiled for AVX2/AVX-512 by MUSIQ_VECTOR_CLONES), tiles of rows x panels taken
//      dynamically by the threads, each writing its tile's bias (or adding it to the
//      residual) first and its GELU last, while the tile is in cache.
#include "cpu/gemm.h"

#include <omp.h>

#include <algorithm>

#include "cpu/vector_math.h"

namespace musiq::cpu {
namespace {

constexpr int kTileRows = 6;      // rows of a register tile: 12 accumulators + 2 of b
constexpr int kBlockRows = 96;    // rows of a task: their k-block of `a` stays in L2
constexpr int kMostBlockK = 512;  // longer sums run in equal k-blocks of at most this

// 8 floats; alignment 4 so that loads and stores of rows at any offset are allowed.
typedef float Vec8 __attribute__((vector_size(32), aligned(4)));

// c[r, 0:16] += sum over p < kc of a[r, p] * panel[p, 0:16], r < R; c rows ldc apart.
// The block's sum starts from zero and is added to c at the end: a k of 16,384 is summed
// as 32 partial sums, not one running sum (which took errors past the op test's bound).
template <int R>
__attribute__((always_inline)) inline void tile(int kc, const float* a, int64_t lda,
                                                const float* panel, float* c, int64_t ldc) {
  Vec8 acc[R][2];
#pragma GCC unroll 6
  for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = Vec8{};
  for (int p = 0; p < kc; ++p) {
    const Vec8 b0 = *reinterpret_cast<const Vec8*>(panel + p * kPanelWidth);
    const Vec8 b1 = *reinterpret_cast<const Vec8*>(panel + p * kPanelWidth + 8);
#pragma GCC unroll 6
    for (int r = 0; r < R; ++r) {
      const float x = a[r * lda + p];
      acc[r][0] += x * b0;
      acc[r][1] += x * b1;
    }
  }
#pragma GCC unroll 6
  for (int r = 0; r < R; ++r) {
    *reinterpret_cast<Vec8*>(c + r * ldc) += acc[r][0];
    *reinterpret_cast<Vec8*>(c + r * ldc + 8) += acc[r][1];
  }
}

// A tile of R rows whose panel may be narrower than 16 columns in `out` (the last one):
// through a 16-wide copy.
template <int R>
__attribute__((always_inline)) inline void edge_tile(int kc, const float* a, int64_t lda,
                                                     const float* panel, float* c, int64_t ldc,
                                                     int width) {
  if (width == kPanelWidth) return tile<R>(kc, a, lda, panel, c, ldc);
  float local[R * kPanelWidth] = {};
  for (int r = 0; r < R; ++r) std::copy_n(c + r * ldc, width, local + r * kPanelWidth);
  tile<R>(kc, a, lda, panel, local, kPanelWidth);
  for (int r = 0; r < R; ++r) std::copy_n(local + r * kPanelWidth, width, c + r * ldc);
}

// Rows [0, rows) x panels [p0, p1) of the output: start values, every k-block, GELU.
MUSIQ_VECTOR_CLONES void task(const float* a, int64_t rows, int k, const float* packed, int n,
                              int p0, int p1, const float* bias, bool accumulate, bool gelu,
                              float* out) {
  const int j0 = p0 * kPanelWidth, j1 = std::min(n, p1 * kPanelWidth);
  for (int64_t r = 0; r < rows; ++r) {
    float* row = out + r * n;
    if (!accumulate) std::fill(row + j0, row + j1, 0.0f);
    if (bias) {
#pragma omp simd
      for (int j = j0; j < j1; ++j) row[j] += bias[j];
    }
  }
  const int k_blocks = (k + kMostBlockK - 1) / kMostBlockK;
  const int block_k = (k + k_blocks - 1) / k_blocks;
  for (int k0 = 0; k0 < k; k0 += block_k) {
    const int kc = std::min(block_k, k - k0);
    for (int p = p0; p < p1; ++p) {
      const float* panel = packed + (int64_t{p} * k + k0) * kPanelWidth;
      const int j0 = p * kPanelWidth, width = std::min(kPanelWidth, n - j0);
      const float* a0 = a + k0;
      float* c0 = out + j0;
      int64_t r = 0;
      for (; r + kTileRows <= rows; r += kTileRows)
        edge_tile<kTileRows>(kc, a0 + r * k, k, panel, c0 + r * n, n, width);
      switch (rows - r) {
        case 5: edge_tile<5>(kc, a0 + r * k, k, panel, c0 + r * n, n, width); break;
        case 4: edge_tile<4>(kc, a0 + r * k, k, panel, c0 + r * n, n, width); break;
        case 3: edge_tile<3>(kc, a0 + r * k, k, panel, c0 + r * n, n, width); break;
        case 2: edge_tile<2>(kc, a0 + r * k, k, panel, c0 + r * n, n, width); break;
        case 1: edge_tile<1>(kc, a0 + r * k, k, panel, c0 + r * n, n, width); break;
        default: break;
      }
    }
  }
  if (!gelu) return;
  for (int64_t r = 0; r < rows; ++r) {
    float* row = out + r * n;
#pragma omp simd
    for (int j = j0; j < j1; ++j) row[j] = gelu_tanh(row[j]);
  }
}

}  // namespace

int64_t packed_floats(int k, int n) {
  return int64_t{(n + kPanelWidth - 1) / kPanelWidth} * k * kPanelWidth;
}

void pack_columns(const float* b, int k, int n, float* packed) {
  const int panels = (n + kPanelWidth - 1) / kPanelWidth;
  for (int p = 0; p < panels; ++p) {
    const int j0 = p * kPanelWidth, width = std::min(kPanelWidth, n - j0);
    for (int i = 0; i < k; ++i) {
      float* dst = packed + (int64_t{p} * k + i) * kPanelWidth;
      std::copy_n(b + int64_t{i} * n + j0, width, dst);
      std::fill(dst + width, dst + kPanelWidth, 0.0f);
    }
  }
}

void gemm(const float* a, int64_t m, int k, const float* packed, int n, const float* bias,
          bool accumulate, bool gelu, float* out) {
  if (m <= 0 || n <= 0) return;
  const int panels = (n + kPanelWidth - 1) / kPanelWidth;
  const int64_t row_blocks = (m + kBlockRows - 1) / kBlockRows;
  // Enough tasks that threads finish together (and one slowed by another process leaves
  // its share to the others): cut the panels into groups while tasks are few.
  const int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  int groups = 1;
  while (row_blocks * groups < 8 * int64_t{threads} && groups < panels) ++groups;
  const int per_group = (panels + groups - 1) / groups;
  groups = (panels + per_group - 1) / per_group;
  const int64_t tasks = row_blocks * groups;
#pragma omp parallel for schedule(dynamic) if (tasks > 1 && threads > 1)
  for (int64_t t = 0; t < tasks; ++t) {
    const int64_t r0 = t / groups * kBlockRows;
    const int p0 = static_cast<int>(t % groups) * per_group;
    task(a + r0 * k, std::min<int64_t>(kBlockRows, m - r0), k, packed, n, p0,
         std::min(panels, p0 + per_group), bias, accumulate, gelu, out + r0 * n);
  }
}

}  // namespace musiq::cpu
