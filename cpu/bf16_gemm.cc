// bf16::gemm: the bf16 GEMM on AMX tiles or AVX512_BF16 dot products. Per task, 32 rows of
// `a` (two A tiles) against two 16-column panels of b (two B tiles) into 32 x 32 sums (four
// C tiles, or 8-row register blocks), over all of k; a task takes a group of panel pairs,
// so its rows of `a` stay in L1 while the panels stream from L2. gemm() rounds `a` to
// bfloat16 as each task starts, into rows padded to whole tiles; gemm_rounded() takes such
// rows from a caller that wrote them so.
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/precision.h"
#include "cpu/bf16_gemm.h"
#include "cpu/isa.h"
#include "cpu/parallel_for.h"
#include "cpu/vector_math.h"

namespace musiq::cpu::bf16 {
namespace {

constexpr int kTileRows = 16;  // rows of every tile
constexpr int kTileK = 32;     // bfloat16 values of k in an A tile's row (64 bytes)
constexpr int kPanel = 16;     // columns of a B panel and of a C tile
constexpr int kTileValues = kTileRows * kTileK;
constexpr int kBlockRows = 2 * kTileRows;  // rows of a task
constexpr int kBlockCols = 2 * kPanel;     // columns of a pair of panels

// Linux: the tile data state is off until the process asks for it (arch_prctl(2)).
constexpr int kArchReqXcompPerm = 0x1023;
constexpr int kXfeatureXtiledata = 18;

// The layout ldtilecfg reads (palette 1).
struct alignas(64) TileConfig {
  uint8_t palette = 1, start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t bytes_per_row[16] = {};
  uint8_t rows[16] = {};
};

constexpr Kernel kKernels[] = {Kernel::kPlain, Kernel::kAvx512Bf16, Kernel::kAmx};

bool runs(Kernel kernel) {
  __builtin_cpu_init();
  const bool avx512_bf16 =
      __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bf16");
  switch (kernel) {
    case Kernel::kPlain: return true;
    case Kernel::kAvx512Bf16: return avx512_bf16;
    case Kernel::kAmx: {
      // Asked of Linux once; the answer holds for the whole process.
      static const bool granted =
          avx512_bf16 && __builtin_cpu_supports("amx-tile") && __builtin_cpu_supports("amx-bf16") &&
          syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
      return granted;
    }
  }
  return false;
}

Kernel decide() {
  const char* forced = std::getenv("MUSIQ_CPU_BF16");
  if (!forced || !*forced)
    return runs(Kernel::kAmx)          ? Kernel::kAmx
           : runs(Kernel::kAvx512Bf16) ? Kernel::kAvx512Bf16
                                       : Kernel::kPlain;
  for (const Kernel k : kKernels)
    if (std::string(forced) == kernel_name(k)) {
      if (!runs(k))
        throw Error(std::string("MUSIQ_CPU_BF16=") + forced +
                    ": this CPU (or kernel) cannot run it");
      return k;
    }
  throw Error(std::string("MUSIQ_CPU_BF16=") + forced +
              ": not a bf16 kernel (use amx, avx512_bf16 or plain)");
}

Kernel& chosen() {
  static Kernel kernel = decide();
  return kernel;
}

// Only the functions that hold tile or bf16 instructions are compiled for them (so that
// the others still inline the header's float helpers); the others for AVX-512, which every
// CPU with either kernel has, whatever MUSIQ_CPU_ISA asks of the fp32 kernels.
#define MUSIQ_AMX_TARGET __attribute__((target("amx-tile,amx-bf16")))
#define MUSIQ_DPBF16_TARGET \
  __attribute__((target("avx2,fma,avx512f,avx512bw,avx512dq,avx512vl,avx512bf16")))

// Every tile 16 rows of 64 bytes, once per thread: nothing else in the process configures
// tiles, so the configuration stays.
MUSIQ_AMX_TARGET void configure_tiles() {
  thread_local bool configured = false;
  if (configured) return;
  TileConfig config;
  for (int t = 0; t < 8; ++t) {
    config.rows[t] = kTileRows;
    config.bytes_per_row[t] = 64;
  }
  // As an asm statement that reads all of `config`: GCC 12's _tile_loadconfig builtin does
  // not say it reads memory, and the stores that fill the config were dropped.
  asm volatile("ldtilecfg %0" : : "m"(config));
  configured = true;
}

inline uint16_t bf16_bits(float x) {
  return static_cast<uint16_t>(std::bit_cast<uint32_t>(round_to_bf16(x)) >> 16);
}

// vcvtne2ps2bf16: one instruction per 32 floats, where rounding with integer operations had
// held about half of attention's softmax samples (a 1024x768 bf16 pass, one thread: 9%
// faster with the conversion instruction). It rounds to nearest even and quiets NaNs as
// round_to_bf16 does, but reads denormal floats as zero, as the tiles read denormal inputs
// (so only a float just below the smallest normal, which round_to_bf16 rounds up to it,
// comes out differently).
MUSIQ_DPBF16_TARGET void round_run(const float* src, int64_t count, uint16_t* dst) {
  for (int64_t j = 0; j < count; j += 32) {
    const int64_t left = count - j;
    const __mmask32 lanes = left >= 32 ? ~__mmask32{0} : static_cast<__mmask32>((1ull << left) - 1);
    const __m512 low = _mm512_maskz_loadu_ps(static_cast<__mmask16>(lanes), src + j);
    const __m512 high = _mm512_maskz_loadu_ps(static_cast<__mmask16>(lanes >> 16), src + j + 16);
    _mm512_mask_storeu_epi16(dst + j, lanes, (__m512i)_mm512_cvtne2ps_pbh(high, low));
  }
}

// `rows` rows of `a` rounded into `out` (rows `width` apart, zero past k).
void round_rows(const float* a, int64_t lda, int k, int64_t rows, int64_t width, uint16_t* out) {
  for (int64_t r = 0; r < rows; ++r) {
    uint16_t* dst = out + r * width;
    round_run(a + r * lda, k, dst);
    std::fill(dst + k, dst + width, uint16_t{0});
  }
}

// C tiles 0-3 = the 32 rows at `a` (rows a_stride bytes apart) times panels b0 (and b1
// when kTwo), over `groups` tiles of k; stored to c [32][32], rows ldc floats apart.
template <bool kTwo>
MUSIQ_AMX_TARGET void block_amx(const uint16_t* a, int64_t a_stride, int64_t a_half,
                                const uint16_t* b0, const uint16_t* b1, int groups, float* c,
                                int64_t ldc) {
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  // Each tile is loaded for the next group as soon as this group's products have read it:
  // the loads then overlap the products still running (7% faster with every operand in L1).
  _tile_loadd(4, a, a_stride);
  _tile_loadd(5, a + a_half, a_stride);
  _tile_loadd(6, b0, 64);
  if constexpr (kTwo) _tile_loadd(7, b1, 64);
  for (int g = 0; g < groups; ++g) {
    const bool more = g + 1 < groups;
    const int64_t next_a = (g + 1) * kTileK, next_b = int64_t{g + 1} * kTileValues;
    _tile_dpbf16ps(0, 4, 6);
    if constexpr (kTwo) _tile_dpbf16ps(1, 4, 7);
    if (more) _tile_loadd(4, a + next_a, a_stride);
    _tile_dpbf16ps(2, 5, 6);
    if (more) _tile_loadd(6, b0 + next_b, 64);
    if constexpr (kTwo) _tile_dpbf16ps(3, 5, 7);
    if (more) {
      _tile_loadd(5, a + a_half + next_a, a_stride);
      if constexpr (kTwo) _tile_loadd(7, b1 + next_b, 64);
    }
  }
  const int64_t stride = ldc * int64_t{sizeof(float)};
  _tile_stored(0, c, stride);
  _tile_stored(2, c + kTileRows * ldc, stride);
  if constexpr (kTwo) {
    _tile_stored(1, c + kPanel, stride);
    _tile_stored(3, c + kTileRows * ldc + kPanel, stride);
  }
}

// The same block with AVX512_BF16: per pair of k, one vector of each panel (a row of its
// tile) and each row's pair of `a` broadcast, in 8-row register blocks (16 sums).
template <bool kTwo>
MUSIQ_DPBF16_TARGET void block_dp(const uint16_t* a, int64_t stride, const uint16_t* b0,
                                  const uint16_t* b1, int groups, float* c, int64_t ldc) {
  constexpr int kRows = 8;
  for (int r0 = 0; r0 < kBlockRows; r0 += kRows) {
    __m512 sums[kRows][2];
    for (int r = 0; r < kRows; ++r) sums[r][0] = sums[r][1] = _mm512_setzero_ps();
    const uint16_t* rows = a + r0 * stride;
    for (int pair = 0; pair < groups * kTileRows; ++pair) {
      const __m512bh v0 = (__m512bh)_mm512_loadu_si512(b0 + pair * kTileK);
      const __m512bh v1 = kTwo ? (__m512bh)_mm512_loadu_si512(b1 + pair * kTileK) : v0;
      for (int r = 0; r < kRows; ++r) {
        uint32_t two;  // a's values 2 pair and 2 pair + 1 of row r0 + r
        std::memcpy(&two, rows + r * stride + 2 * pair, sizeof two);
        const __m512bh x = (__m512bh)_mm512_set1_epi32(static_cast<int>(two));
        sums[r][0] = _mm512_dpbf16_ps(sums[r][0], x, v0);
        if constexpr (kTwo) sums[r][1] = _mm512_dpbf16_ps(sums[r][1], x, v1);
      }
    }
    for (int r = 0; r < kRows; ++r) {
      _mm512_storeu_ps(c + (r0 + r) * ldc, sums[r][0]);
      if constexpr (kTwo) _mm512_storeu_ps(c + (r0 + r) * ldc + kPanel, sums[r][1]);
    }
  }
}

// The block of rows at `a` (`stride` values apart) and panels b0 (and b1) on `kernel`, into
// c (rows ldc apart).
template <bool kTwo>
void block(Kernel kernel, const uint16_t* a, int64_t stride, const uint16_t* b0,
           const uint16_t* b1, int groups, float* c, int64_t ldc) {
  if (kernel == Kernel::kAmx) {
    configure_tiles();
    block_amx<kTwo>(a, stride * int64_t{sizeof(uint16_t)}, kTileRows * stride, b0, b1, groups, c,
                    ldc);
  } else {
    block_dp<kTwo>(a, stride, b0, b1, groups, c, ldc);
  }
}

// out = start + sums for `rows` x `cols` of the block c [32][32], then GELU, as gemm() in
// cpu/gemm.h applies its start and epilogue.
MUSIQ_TARGET_AVX512 void finish(const float* c, int64_t rows, int cols, const float* bias,
                                bool accumulate, bool gelu, float* out, int64_t ldc) {
  for (int64_t r = 0; r < rows; ++r) {
    float* o = out + r * ldc;
    const float* sums = c + r * kBlockCols;
#pragma omp simd
    for (int j = 0; j < cols; ++j) {
      float start = accumulate ? o[j] : 0.0f;
      if (bias) start += bias[j];
      o[j] = start + sums[j];
    }
    if (!gelu) continue;
#pragma omp simd
    for (int j = 0; j < cols; ++j) o[j] = gelu_tanh(o[j]);
  }
}

// gemm() over tasks of 32 rows x a cut of the panel pairs, each block of 32 x 32 finished as
// soon as its sums are in; block_rows(r0, rows) gives a task's 32 rows of bfloat16 `a`,
// `stride` values apart.
template <typename BlockRows>
void run_tasks(int64_t m, int k, const uint16_t* packed, int n, const float* bias,
               bool accumulate, bool gelu, float* out, int64_t ldc, int64_t stride,
               const BlockRows& block_rows) {
  const int groups = (k + kTileK - 1) / kTileK;
  const int panels = (n + kPanel - 1) / kPanel, pairs = (panels + 1) / 2;
  const int64_t blocks = (m + kBlockRows - 1) / kBlockRows;
  const int threads = loop_threads();
  // Enough tasks that threads finish together: panel pairs cut into groups while few.
  int cuts = 1;
  while (blocks * cuts < 8 * int64_t{threads} && cuts < pairs) ++cuts;
  const int per_cut = (pairs + cuts - 1) / cuts;
  cuts = (pairs + per_cut - 1) / per_cut;
  const int64_t tasks = blocks * cuts;
  const Kernel kernel = chosen();
  if (kernel == Kernel::kPlain) throw Error("bf16::gemm: the plain path has no packed kernels");
  const bool bare = !bias && !accumulate && !gelu;
  parallel_for<Schedule::kDynamic>(tasks, [&](int64_t t) {
    alignas(64) float c[kBlockRows * kBlockCols];
    const int64_t r0 = t / cuts * kBlockRows, rows = std::min<int64_t>(kBlockRows, m - r0);
    const int first = static_cast<int>(t % cuts) * per_cut;
    const uint16_t* a_block = block_rows(r0, rows);
    for (int pair = first; pair < std::min(pairs, first + per_cut); ++pair) {
      const int p = 2 * pair, j0 = p * kPanel, cols = std::min(kBlockCols, n - j0);
      const uint16_t* b0 = packed + int64_t{p} * groups * kTileValues;
      float* const o = out + r0 * ldc + j0;
      // Bare sums of a whole block (attention's scores) go straight to `out`.
      const bool direct = bare && rows == kBlockRows && cols == kBlockCols;
      if (p + 1 < panels)
        block<true>(kernel, a_block, stride, b0, b0 + groups * kTileValues, groups,
                    direct ? o : c, direct ? ldc : kBlockCols);
      else
        block<false>(kernel, a_block, stride, b0, nullptr, groups, c, kBlockCols);
      if (!direct)
        finish(c, rows, cols, bias ? bias + j0 : nullptr, accumulate, gelu, o, ldc);
    }
  });
}

// One B tile: the 32 x 16 values of b at `from` (rows x cols of them, zero past), rounded and
// interleaved: tile row i holds k = 2i and 2i + 1 of the group, per column. Read along
// whichever stride is 1 (K^T's columns are K's rows), then rounded as 16 rows of 16
// pairs at once.
MUSIQ_TARGET_AVX512 void pack_tile(const float* from, int rows, int cols, int64_t row_stride,
                                   int64_t column_stride, uint16_t* tile) {
  float values[kTileK][kPanel] = {};
  if (column_stride == 1)
    for (int r = 0; r < rows; ++r) std::copy_n(from + r * row_stride, cols, values[r]);
  else
    for (int col = 0; col < cols; ++col)
      for (int r = 0; r < rows; ++r) values[r][col] = from[r * row_stride + col * column_stride];
  uint32_t pairs[kTileRows][kPanel];
  for (int i = 0; i < kTileRows; ++i)
#pragma omp simd
    for (int col = 0; col < kPanel; ++col)
      pairs[i][col] = uint32_t{bf16_bits(values[2 * i][col])} |
                      uint32_t{bf16_bits(values[2 * i + 1][col])} << 16;
  std::memcpy(tile, pairs, sizeof pairs);  // little-endian: k = 2i first
}

}  // namespace

const char* kernel_name(Kernel kernel) {
  switch (kernel) {
    case Kernel::kAmx: return "amx";
    case Kernel::kAvx512Bf16: return "avx512_bf16";
    case Kernel::kPlain: break;
  }
  return "plain";
}

Kernel kernel() { return chosen(); }

void set_kernel(Kernel kernel) {
  if (!runs(kernel))
    throw Error(std::string("bf16 kernel ") + kernel_name(kernel) + ": this CPU cannot run it");
  chosen() = kernel;
}

int64_t packed_count(int k, int n) {
  const int64_t panels = (n + kPanel - 1) / kPanel, groups = (k + kTileK - 1) / kTileK;
  return panels * groups * kTileValues;
}

void pack(const float* b, int k, int n, int64_t row_stride, int64_t column_stride,
          uint16_t* packed) {
  const int panels = (n + kPanel - 1) / kPanel, groups = (k + kTileK - 1) / kTileK;
  for (int p = 0; p < panels; ++p)
    for (int g = 0; g < groups; ++g) {
      const int rows = std::min(kTileK, k - g * kTileK), cols = std::min(kPanel, n - p * kPanel);
      const float* from =
          b + int64_t{g} * kTileK * row_stride + int64_t{p} * kPanel * column_stride;
      pack_tile(from, rows, cols, row_stride, column_stride,
                packed + (int64_t{p} * groups + g) * kTileValues);
    }
}

int64_t rounded_stride(int k) { return int64_t{(k + kTileK - 1) / kTileK} * kTileK; }

void to_bf16_bits(const float* src, int64_t count, uint16_t* dst) { round_run(src, count, dst); }

void gemm(const float* a, int64_t m, int k, int64_t lda, const uint16_t* packed, int n,
          const float* bias, bool accumulate, bool gelu, float* out, int64_t ldc) {
  if (m <= 0 || n <= 0) return;
  const int64_t width = rounded_stride(k);
  // Each task rounds its rows just before it multiplies them, into its thread's buffer
  // (kept across calls), where they stay in cache for the products: a pass rounding all of
  // `a` first had taken a tenth of a bf16 pass.
  run_tasks(m, k, packed, n, bias, accumulate, gelu, out, ldc, width,
            [&](int64_t r0, int64_t rows) -> const uint16_t* {
              thread_local std::vector<uint16_t> block;
              block.resize(size_t(kBlockRows * width));
              round_rows(a + r0 * lda, lda, k, rows, width, block.data());
              std::fill(block.data() + rows * width, block.data() + kBlockRows * width,
                        uint16_t{0});
              return block.data();
            });
}

void gemm_rounded(const uint16_t* a16, int64_t m, int k, int64_t lda16, const uint16_t* packed,
                  int n, const float* bias, bool accumulate, bool gelu, float* out, int64_t ldc) {
  if (m <= 0 || n <= 0) return;
  run_tasks(m, k, packed, n, bias, accumulate, gelu, out, ldc, lda16,
            [&](int64_t r0, int64_t) { return a16 + r0 * lda16; });
}

}  // namespace musiq::cpu::bf16
