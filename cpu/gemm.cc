// gemm: our own SGEMM, since OpenBLAS packed the weights again, zeroed the output and
// synchronised its threads on every call. Weights are packed once at load; 6x16 register
// tiles (AVX2 and AVX-512 clones) run over rows x panels tasks taken dynamically, so a thread
// slowed by another process leaves its share. Bias, residual and GELU are applied per tile
// while it is in cache; rows of `a` come through pointers, so convolutions read in place.
#include "cpu/gemm.h"

#include <omp.h>

#include <algorithm>
#include <vector>

#include "cpu/vector_math.h"

namespace musiq::cpu {
namespace {

constexpr int kBlockRows = 192;   // rows of a task: their k-block of `a` stays in L2
constexpr int kMostBlockK = 512;  // longer sums run in equal k-blocks of at most this

// 8 floats; alignment 4 so that loads and stores of rows at any offset are allowed.
typedef float Vec8 __attribute__((vector_size(32), aligned(4)));

// Where a tile's R rows of `a` are: the k values of row r in runs of `run` floats, run j
// at rows[r] + j * run_stride (a dense `a`: one run of all k).
template <int R>
struct TileRows {
  const float* rows[R];
  int run;
  int64_t run_stride;
};

// c[r, 0:16] = start + sum over p < kc of a[r, k0 + p] * panel[p, 0:16], r < R, rows ldc
// apart; start = (c if keep_c, else 0) + (bias16[0:16] if not null). The block's sum starts
// from zero: a k of 16,384 is summed as 32 partial sums, not one running sum (which took
// errors past the op test's bound). The sum runs in k order across the runs of `a`.
// With `next` (the panel the task reads after this one), each step also asks for the
// same line of it into L2: the weights come from memory, and the first tile of a pass
// would otherwise wait on them. Interleaved with the weights out of cache: the embedding
// (25 MB, m = 64 and 44) 5-6% faster, the encoder's shapes within +-2%.
template <int R>
__attribute__((always_inline)) inline void tile(int k0, int kc, const TileRows<R>& a,
                                                const float* panel, float* c, int64_t ldc,
                                                bool keep_c, const float* bias16,
                                                const float* next = nullptr) {
  Vec8 acc[R][2];
#pragma GCC unroll 6
  for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = Vec8{};
  // The block starts in run `run` at float `from` of it (a dense `a`: run 0, float k0).
  int run = k0 / a.run, from = k0 - run * a.run;
  for (int p = 0; p < kc; ++run, from = 0) {
    const int len = std::min(a.run - from, kc - p);
    const float* x[R];
#pragma GCC unroll 6
    for (int r = 0; r < R; ++r) x[r] = a.rows[r] + run * a.run_stride + from;
    const float* b = panel + int64_t{p} * kPanelWidth;
    const float* next_b = next ? next + int64_t{p} * kPanelWidth : nullptr;
    for (int i = 0; i < len; ++i) {
      if (next_b) __builtin_prefetch(next_b + i * kPanelWidth, 0, 2);
      const Vec8 b0 = *reinterpret_cast<const Vec8*>(b + i * kPanelWidth);
      const Vec8 b1 = *reinterpret_cast<const Vec8*>(b + i * kPanelWidth + 8);
#pragma GCC unroll 6
      for (int r = 0; r < R; ++r) {
        acc[r][0] += x[r][i] * b0;
        acc[r][1] += x[r][i] * b1;
      }
    }
    p += len;
  }
#pragma GCC unroll 6
  for (int r = 0; r < R; ++r) {
    Vec8* row = reinterpret_cast<Vec8*>(c + r * ldc);
    Vec8 s0 = keep_c ? row[0] : Vec8{}, s1 = keep_c ? row[1] : Vec8{};
    if (bias16) {
      s0 += *reinterpret_cast<const Vec8*>(bias16);
      s1 += *reinterpret_cast<const Vec8*>(bias16 + 8);
    }
    row[0] = s0 + acc[r][0];
    row[1] = s1 + acc[r][1];
  }
}

// The rows of `a` as the GEMM reads them: dense, row i at a + i * lda in one run of k
// floats, or a convolution's windows (ConvWindows).
struct RowsOfA {
  const float* a = nullptr;
  int64_t lda = 0;
  const ConvWindows* windows = nullptr;

  const float* row(int64_t i) const {
    if (!windows) return a + i * lda;
    const ConvWindows& w = *windows;
    const int64_t img = i / (int64_t{w.out_h} * w.out_w);
    const int64_t oy = i / w.out_w % w.out_h, ox = i % w.out_w;
    return w.padded + ((img * w.hp + oy * w.stride) * w.wp + ox * w.stride) * w.cin;
  }
  int run(int k) const { return windows ? windows->kw * windows->cin : k; }
  int64_t run_stride() const { return windows ? int64_t{windows->wp} * windows->cin : 0; }
};

// One panel's pass over a k-block, as every tile of it runs: see tile().
struct PanelPass {
  int k0, kc;
  const float* const* rows;  // of `a`, as RowsOfA finds them
  int run;
  int64_t run_stride;
  const float* panel;
  int64_t ldc;
  int width;  // columns of the panel in `out`: 16 but in the last panel
  bool keep_c;
  const float* bias16;

  template <int R>
  TileRows<R> tile_rows(int64_t r) const {
    TileRows<R> t{{}, run, run_stride};
    for (int i = 0; i < R; ++i) t.rows[i] = rows[r + i];
    return t;
  }
};

// R rows of a panel pass from row r; a panel narrower than 16 columns in `out` goes
// through a copy.
template <int R>
__attribute__((always_inline)) inline void edge_tile(const PanelPass& p, int64_t r, float* c) {
  const TileRows<R> a = p.tile_rows<R>(r);
  if (p.width == kPanelWidth) return tile<R>(p.k0, p.kc, a, p.panel, c, p.ldc, p.keep_c, p.bias16);
  float local[R * kPanelWidth] = {}, local_bias[kPanelWidth] = {};
  for (int i = 0; i < R; ++i) std::copy_n(c + i * p.ldc, p.width, local + i * kPanelWidth);
  if (p.bias16) std::copy_n(p.bias16, p.width, local_bias);
  tile<R>(p.k0, p.kc, a, p.panel, local, kPanelWidth, p.keep_c, p.bias16 ? local_bias : nullptr);
  for (int i = 0; i < R; ++i) std::copy_n(local + i * kPanelWidth, p.width, c + i * p.ldc);
}

// Rows [r0, r0 + rows) x panels [p0, p1) of the output, rows <= kBlockRows: every k-block,
// then GELU.
MUSIQ_VECTOR_CLONES void task(const RowsOfA& a, int64_t r0, int64_t rows, int k,
                              const float* packed, int n, int p0, int p1, const float* bias,
                              bool accumulate, bool gelu, float* out, int64_t ldc) {
  const float* row_ptrs[kBlockRows];
  for (int64_t r = 0; r < rows; ++r) row_ptrs[r] = a.row(r0 + r);
  out += r0 * ldc;
  const int k_blocks = (k + kMostBlockK - 1) / kMostBlockK;
  const int block_k = (k + k_blocks - 1) / k_blocks;
  for (int k0 = 0; k0 < k; k0 += block_k) {
    const int kc = std::min(block_k, k - k0);
    for (int p = p0; p < p1; ++p) {
      const float* panel = packed + (int64_t{p} * k + k0) * kPanelWidth;
      const int j0 = p * kPanelWidth, width = std::min(kPanelWidth, n - j0);
      float* c0 = out + j0;
      // The first k-block starts from the bias and/or what `out` holds; later ones add.
      const bool first = k0 == 0;
      const PanelPass pass{k0,
                           kc,
                           row_ptrs,
                           a.run(k),
                           a.run_stride(),
                           panel,
                           ldc,
                           width,
                           !first || accumulate,
                           first && bias ? bias + j0 : nullptr};
      // The panel after this one: the next of the group, else the group's first in the
      // next k-block.
      const bool last_panel = p + 1 == p1, last_block = k0 + kc >= k;
      const float* next =
          last_panel ? (last_block ? nullptr : packed + (int64_t{p0} * k + k0 + kc) * kPanelWidth)
                     : panel + int64_t{k} * kPanelWidth;
      int64_t r = 0;
      if (next && width == kPanelWidth && rows >= kTileRows) {
        tile<kTileRows>(k0, kc, pass.tile_rows<kTileRows>(0), panel, c0, ldc, pass.keep_c,
                        pass.bias16, next);
        r = kTileRows;
      }
      for (; r + kTileRows <= rows; r += kTileRows) edge_tile<kTileRows>(pass, r, c0 + r * ldc);
      switch (rows - r) {
        case 5: edge_tile<5>(pass, r, c0 + r * ldc); break;
        case 4: edge_tile<4>(pass, r, c0 + r * ldc); break;
        case 3: edge_tile<3>(pass, r, c0 + r * ldc); break;
        case 2: edge_tile<2>(pass, r, c0 + r * ldc); break;
        case 1: edge_tile<1>(pass, r, c0 + r * ldc); break;
        default: break;
      }
    }
  }
  if (!gelu) return;
  const int j0 = p0 * kPanelWidth, j1 = std::min(n, p1 * kPanelWidth);
  for (int64_t r = 0; r < rows; ++r) {
    float* row = out + r * ldc;
#pragma omp simd
    for (int j = j0; j < j1; ++j) row[j] = gelu_tanh(row[j]);
  }
}

// out = start + a @ b over tasks of rows x panel groups: see gemm() in gemm.h.
void gemm_rows(const RowsOfA& a, int64_t m, int k, const float* packed, int n, const float* bias,
               bool accumulate, bool gelu, float* out, int64_t ldc) {
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
    task(a, r0, std::min<int64_t>(kBlockRows, m - r0), k, packed, n, p0,
         std::min(panels, p0 + per_group), bias, accumulate, gelu, out, ldc);
  }
}

// b [k, n] into panels of 16 columns: b[i, j] = src[i * ld + j], or src[j * ld + i] if
// kTransposed.
template <bool kTransposed>
void pack_panels(const float* src, int k, int n, int64_t ld, float* packed) {
  const int panels = (n + kPanelWidth - 1) / kPanelWidth;
  for (int p = 0; p < panels; ++p) {
    const int j0 = p * kPanelWidth, width = std::min(kPanelWidth, n - j0);
    for (int i = 0; i < k; ++i) {
      float* dst = packed + (int64_t{p} * k + i) * kPanelWidth;
      // A fixed 16: untransposed, two vector moves rather than a memmove call.
      for (int j = 0; j < kPanelWidth; ++j)
        dst[j] = j >= width ? 0.0f : kTransposed ? src[(j0 + j) * ld + i] : src[i * ld + j0 + j];
    }
  }
}

}  // namespace

int64_t packed_floats(int k, int n) {
  return int64_t{(n + kPanelWidth - 1) / kPanelWidth} * k * kPanelWidth;
}

void pack_columns(const float* b, int k, int n, int64_t ldb, float* packed) {
  pack_panels<false>(b, k, n, ldb, packed);
}

void pack_transposed(const float* bt, int k, int n, int64_t ldbt, float* packed) {
  pack_panels<true>(bt, k, n, ldbt, packed);
}

const float* packed_for_call(const float* b, int k, int n) {
  // Kept across calls: after the largest matrix so far, packing allocates nothing.
  thread_local std::vector<float> packed;
  packed.resize(static_cast<size_t>(packed_floats(k, n)));
  pack_columns(b, k, n, n, packed.data());
  return packed.data();
}

void gemm(const float* a, int64_t m, int k, const float* packed, int n, const float* bias,
          bool accumulate, bool gelu, float* out, int64_t ldc) {
  gemm_rows(RowsOfA{a, k}, m, k, packed, n, bias, accumulate, gelu, out, ldc);
}

void gemm(const ConvWindows& windows, int64_t m, const float* packed, int n, float* out) {
  gemm_rows(RowsOfA{nullptr, 0, &windows}, m, windows.kh * windows.kw * windows.cin, packed, n,
            nullptr, false, false, out, n);
}

}  // namespace musiq::cpu
