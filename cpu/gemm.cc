// gemm: our own SGEMM, since OpenBLAS packed the weights again, zeroed the output and
// synchronised its threads on every call. Weights are packed once at load; register tiles
// run over rows x panels tasks taken dynamically, so a thread slowed by another process
// leaves its share. Tiles per ISA (cpu/isa.h): AVX-512, 12 rows x 2 panels (24 accumulators
// of 32 zmm; one panel at an odd right edge); AVX2 and baseline, 6 rows x 1 panel (12 of 16
// ymm). Bias, residual and GELU are applied per tile while it is in cache; rows of `a` come
// through pointers, so convolutions read in place.
#include "cpu/gemm.h"

#include <algorithm>
#include <vector>

#include "cpu/isa.h"
#include "cpu/parallel_for.h"
#include "cpu/vector_math.h"

namespace musiq::cpu {
namespace {

constexpr int kBlockRows = 192;   // rows of a task: their k-block of `a` stays in L2
constexpr int kMostBlockK = 512;  // longer sums run in equal k-blocks of at most this

// Alignment 4 so that loads and stores of rows at any offset are allowed.
typedef float Vec8 __attribute__((vector_size(32), aligned(4)));
typedef float Vec16 __attribute__((vector_size(64), aligned(4)));

// The vector of L floats. (The types go by their lane count: as template arguments they
// would lose their alignment of 4.)
template <int L>
struct Lanes;
template <>
struct Lanes<8> {
  typedef Vec8 Vec;
};
template <>
struct Lanes<16> {
  typedef Vec16 Vec;
};

// A register tile's shape per ISA: kRows rows of `a` by kPanels adjacent panels, each panel
// as kPanelWidth / kLanes vectors. AVX-512 at 12 rows, not 14 (28 accumulators): GCC then
// runs out of registers and spills, and 192 rows are 16 tiles of 12.
template <Isa kIsa>
struct TileShape {
  static constexpr int kLanes = 8, kRows = 6, kPanels = 1;
};
template <>
struct TileShape<Isa::kAvx512> {
  static constexpr int kLanes = 16, kRows = 12, kPanels = 2;
};
static_assert(kBlockRows % TileShape<Isa::kAvx2>::kRows == 0 &&
                  kBlockRows % TileShape<Isa::kAvx512>::kRows == 0,
              "a task's rows are whole tiles but in the last task");

// Where a tile's R rows of `a` are: the k values of row r in runs of `run` floats, run j
// at rows[r] + j * run_stride (a dense `a`: one run of all k).
template <int R>
struct TileRows {
  const float* rows[R];
  int run;
  int64_t run_stride;
};

// c[r, 0:P*16] = start + sum over p < kc of a[r, k0 + p] * panels[p, 0:P*16], r < R, rows
// ldc apart, panel q at panel + q * panel_stride; start = (c if keep_c, else 0) + (bias[0:P*16]
// if not null). The block's sum starts from zero: a k of 16,384 is summed as 32 partial
// sums, not one running sum (which took errors past the op test's bound). The sum runs in k
// order across the runs of `a`, one FMA a term whatever the vector width.
// With `next` (the panels the task reads after these), each step also asks for the same
// line of them into L2: the weights come from memory, and the first tile of a pass would
// otherwise wait on them. Interleaved with the weights out of cache: the embedding (25 MB,
// m = 64 and 44) 5-6% faster, the encoder's shapes within +-2%.
template <int R, int L, int P>
__attribute__((always_inline)) inline void tile(int k0, int kc, const TileRows<R>& a,
                                                const float* panel, int64_t panel_stride, float* c,
                                                int64_t ldc, bool keep_c, const float* bias,
                                                const float* next) {
  typedef typename Lanes<L>::Vec Vec;
  constexpr int kPerPanel = kPanelWidth / L, kVecs = P * kPerPanel;
  Vec acc[R][kVecs];
#pragma GCC unroll 12
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < kVecs; ++v) acc[r][v] = Vec{};
  // The block starts in run `run` at float `from` of it (a dense `a`: run 0, float k0).
  int run = k0 / a.run, from = k0 - run * a.run;
  for (int p = 0; p < kc; ++run, from = 0) {
    const int len = std::min(a.run - from, kc - p);
    const float* x[R];
#pragma GCC unroll 12
    for (int r = 0; r < R; ++r) x[r] = a.rows[r] + run * a.run_stride + from;
    const float* b = panel + int64_t{p} * kPanelWidth;
    const float* next_b = next ? next + int64_t{p} * kPanelWidth : nullptr;
    for (int i = 0; i < len; ++i) {
      if (next_b)
#pragma GCC unroll 2
        for (int q = 0; q < P; ++q)
          __builtin_prefetch(next_b + q * panel_stride + i * kPanelWidth, 0, 2);
      Vec bv[kVecs];
#pragma GCC unroll 4
      for (int v = 0; v < kVecs; ++v)
        bv[v] = *reinterpret_cast<const Vec*>(b + v / kPerPanel * panel_stride + i * kPanelWidth +
                                              v % kPerPanel * L);
#pragma GCC unroll 12
      for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
        for (int v = 0; v < kVecs; ++v) acc[r][v] += x[r][i] * bv[v];
    }
    p += len;
  }
#pragma GCC unroll 12
  for (int r = 0; r < R; ++r) {
    Vec* row = reinterpret_cast<Vec*>(c + r * ldc);
#pragma GCC unroll 4
    for (int v = 0; v < kVecs; ++v) {
      Vec s = keep_c ? row[v] : Vec{};
      if (bias) s += *reinterpret_cast<const Vec*>(bias + v * L);
      row[v] = s + acc[r][v];
    }
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

// One pass of P adjacent panels over a k-block in vectors of L floats, as every tile of it
// runs: see tile().
template <int L, int P>
struct PanelPass {
  int k0, kc;
  const float* const* rows;  // of `a`, as RowsOfA finds them
  int run;
  int64_t run_stride;
  const float* panel;  // the first; the others panel_stride floats apart
  int64_t panel_stride;
  int64_t ldc;
  int width;  // columns of the panels in `out`: P * 16 but at the right edge
  bool keep_c;
  const float* bias;

  // R rows from row r into c; panels wider than `out` go through a copy.
  template <int R>
  __attribute__((always_inline)) void tile_at(int64_t r, float* c,
                                              const float* next = nullptr) const {
    constexpr int kWidth = P * kPanelWidth;
    TileRows<R> a{{}, run, run_stride};
    for (int i = 0; i < R; ++i) a.rows[i] = rows[r + i];
    if (width == kWidth)
      return tile<R, L, P>(k0, kc, a, panel, panel_stride, c, ldc, keep_c, bias, next);
    float local[R * kWidth] = {}, local_bias[kWidth] = {};
    for (int i = 0; i < R; ++i) std::copy_n(c + i * ldc, width, local + i * kWidth);
    if (bias) std::copy_n(bias, width, local_bias);
    tile<R, L, P>(k0, kc, a, panel, panel_stride, local, kWidth, keep_c,
                  bias ? local_bias : nullptr, next);
    for (int i = 0; i < R; ++i) std::copy_n(local + i * kWidth, width, c + i * ldc);
  }

  // The last `left` < R rows from row r, as one tile of that many.
  template <int R>
  __attribute__((always_inline)) void tail_at(int64_t r, int left, float* c) const {
    if constexpr (R > 0) {
      if (left == R) return tile_at<R>(r, c);
      tail_at<R - 1>(r, left, c);
    }
  }

  // Rows [0, count) in tiles of R, the first asking for `next` into L2.
  template <int R>
  __attribute__((always_inline)) void all_rows(int64_t count, float* c, const float* next) const {
    int64_t r = 0;
    if (next && width == P * kPanelWidth && count >= R) {
      tile_at<R>(0, c, next);
      r = R;
    }
    for (; r + R <= count; r += R) tile_at<R>(r, c + r * ldc);
    tail_at<R - 1>(r, static_cast<int>(count - r), c + r * ldc);
  }
};

// Rows [r0, r0 + rows) x panels [p0, p1) of the output, rows <= kBlockRows: every k-block,
// then GELU. Panels go P at a time, one at a time past the last whole P.
template <Isa kIsa>
__attribute__((always_inline)) inline void task_kernel(const RowsOfA& a, int64_t r0, int64_t rows,
                                                       int k, const float* packed, int n, int p0,
                                                       int p1, const float* bias, bool accumulate,
                                                       bool gelu, float* out, int64_t ldc) {
  using Shape = TileShape<kIsa>;
  constexpr int P = Shape::kPanels;
  const float* row_ptrs[kBlockRows];
  for (int64_t r = 0; r < rows; ++r) row_ptrs[r] = a.row(r0 + r);
  out += r0 * ldc;
  const int64_t panel_stride = int64_t{k} * kPanelWidth;
  const int k_blocks = (k + kMostBlockK - 1) / kMostBlockK;
  const int block_k = (k + k_blocks - 1) / k_blocks;
  for (int k0 = 0; k0 < k; k0 += block_k) {
    const int kc = std::min(block_k, k - k0);
    // The first k-block starts from the bias and/or what `out` holds; later ones add.
    const bool first = k0 == 0;
    for (int p = p0; p < p1;) {
      const int panels = p1 - p >= P ? P : 1;
      const float* panel = packed + int64_t{p} * panel_stride + int64_t{k0} * kPanelWidth;
      const int j0 = p * kPanelWidth, width = std::min(panels * kPanelWidth, n - j0);
      // The panels after these: the next of the group, else the group's first in the
      // next k-block.
      const bool last_panels = p + panels == p1, last_block = k0 + kc >= k;
      const float* next =
          last_panels
              ? (last_block ? nullptr
                            : packed + int64_t{p0} * panel_stride + int64_t{k0 + kc} * kPanelWidth)
              : panel + panels * panel_stride;
      const float* pass_bias = first && bias ? bias + j0 : nullptr;
      const int run = a.run(k);
      const int64_t run_stride = a.run_stride();
      const bool keep_c = !first || accumulate;
      if (panels == P) {
        const PanelPass<Shape::kLanes, P> pass{
            k0, kc, row_ptrs, run, run_stride, panel, panel_stride, ldc, width, keep_c, pass_bias};
        pass.template all_rows<Shape::kRows>(rows, out + j0, next);
      } else if constexpr (P > 1) {
        const PanelPass<Shape::kLanes, 1> pass{
            k0, kc, row_ptrs, run, run_stride, panel, panel_stride, ldc, width, keep_c, pass_bias};
        pass.template all_rows<Shape::kRows>(rows, out + j0, next);
      }
      p += panels;
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

MUSIQ_DISPATCH_BY_ISA(void, task,
                      (const RowsOfA& a, int64_t r0, int64_t rows, int k, const float* packed,
                       int n, int p0, int p1, const float* bias, bool accumulate, bool gelu,
                       float* out, int64_t ldc),
                      (a, r0, rows, k, packed, n, p0, p1, bias, accumulate, gelu, out, ldc))

// out = start + a @ b over tasks of rows x panel groups: see gemm() in gemm.h.
void gemm_rows(const RowsOfA& a, int64_t m, int k, const float* packed, int n, const float* bias,
               bool accumulate, bool gelu, float* out, int64_t ldc) {
  if (m <= 0 || n <= 0) return;
  const int panels = (n + kPanelWidth - 1) / kPanelWidth;
  const int64_t row_blocks = (m + kBlockRows - 1) / kBlockRows;
  // Enough tasks that threads finish together (and one slowed by another process leaves
  // its share to the others): cut the panels into groups while tasks are few.
  const int threads = loop_threads();
  int groups = 1;
  while (row_blocks * groups < 8 * int64_t{threads} && groups < panels) ++groups;
  int per_group = (panels + groups - 1) / groups;
  // AVX-512 tiles hold two panels: an even count per group leaves a lone one only at the end.
  if (cpu_isa() == Isa::kAvx512) per_group += per_group % 2;
  groups = (panels + per_group - 1) / per_group;
  const int64_t tasks = row_blocks * groups;
  parallel_for<Schedule::kDynamic>(tasks, [&](int64_t t) {
    const int64_t r0 = t / groups * kBlockRows;
    const int p0 = static_cast<int>(t % groups) * per_group;
    task(a, r0, std::min<int64_t>(kBlockRows, m - r0), k, packed, n, p0,
         std::min(panels, p0 + per_group), bias, accumulate, gelu, out, ldc);
  });
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
