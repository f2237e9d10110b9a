// bf16 products in hardware (docs/precision.md): a GEMM with bfloat16 inputs and float32
// sums, on Intel AMX tiles or with AVX512_BF16's dot products, for the bf16 precision.
#pragma once
#include <cstdint>

namespace musiq::cpu::bf16 {

// What computes bf16 products: AMX-BF16 tiles, AVX512_BF16 dot products (vdpbf16ps), or
// the plain path (inputs rounded to bfloat16, multiplied on the fp32 kernels).
enum class Kernel { kPlain, kAvx512Bf16, kAmx };

// "plain", "avx512_bf16", "amx": as MUSIQ_CPU_BF16 spells them and `musiq info` says.
const char* kernel_name(Kernel kernel);

// The best the CPU runs (AMX needs Linux to grant the process its tile state), or what
// MUSIQ_CPU_BF16 names; decided once. musiq::Error with a one-line message when
// MUSIQ_CPU_BF16 names no kernel, or one this CPU cannot run.
Kernel kernel();
// Whether kernel() is not the plain path: kernels are then packed by pack() below.
inline bool tiled() { return kernel() != Kernel::kPlain; }
// The products run on `kernel` from now on (tests comparing kernels in one process);
// musiq::Error if the CPU cannot run it. Not while products run on other threads.
void set_kernel(Kernel kernel);

// bfloat16 values of b [k, n] once packed: ceil(n / 16) panels of ceil(k / 32) tiles, each
// 16 rows (pairs of k) x 16 columns x 2, zero-padded: AMX's B tiles, and rows of them
// AVX512_BF16's vectors.
int64_t packed_count(int k, int n);
// b [k, n], b[i, j] at b + i * row_stride + j * column_stride (K^T from K's rows: 1 and
// their distance), each value rounded to bfloat16 (base/precision.h). Only on a CPU that runs
// a bf16 kernel (AVX-512), as the kernels that read the tiles.
void pack(const float* b, int k, int n, int64_t row_stride, int64_t column_stride,
          uint16_t* packed);

// out[m, n] (rows ldc apart) = start + round(a)[m, k] @ b, b packed above, a's rows lda
// apart; start = (out if `accumulate`, else 0) + bias (if not null); then gelu_tanh if
// `gelu`: gemm() of cpu/gemm.h with a rounded to bfloat16, on kernel() (tiled() only).
// Each sum runs in k order, two products at a time, with denormal inputs and results
// flushed to zero. Threads (OpenMP; one inside a parallel region) take blocks of 32 x 32.
void gemm(const float* a, int64_t m, int k, int64_t lda, const uint16_t* packed, int n,
          const float* bias, bool accumulate, bool gelu, float* out, int64_t ldc);

// gemm() on rows of `a` that are bfloat16 already, written where they are made rather than
// rounded and copied here: row r at a16 + r * lda16 (lda16 >= rounded_stride(k)), its
// values past k up to rounded_stride(k) zero, and rows up to the next multiple of 32 past m
// readable (their values are not used).
void gemm_rounded(const uint16_t* a16, int64_t m, int k, int64_t lda16, const uint16_t* packed,
                  int n, const float* bias, bool accumulate, bool gelu, float* out, int64_t ldc);
// The row stride gemm() itself uses: k rounded up to whole tiles (32 values).
int64_t rounded_stride(int k);
// dst[0, count) = the bfloat16 bits of src[0, count), each rounded as base/precision.h's
// round_to_bf16 rounds, but denormal floats read as zero (as the tiles read them). Only on
// a CPU that runs a bf16 kernel (tiled()).
void to_bf16_bits(const float* src, int64_t count, uint16_t* dst);

}  // namespace musiq::cpu::bf16
