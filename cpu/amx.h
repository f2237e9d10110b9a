// bf16 products on Intel AMX (docs/precision.md): a GEMM with bfloat16 inputs and float32
// sums on the tile registers, for the bf16 precision on CPUs that have AMX-BF16.
#pragma once
#include <cstdint>

namespace musiq::cpu::amx {

// Whether the tiles can run here: the CPU has AMX-BF16, Linux granted this process their
// state (arch_prctl ARCH_REQ_XCOMP_PERM), and MUSIQ_CPU_BF16 does not ask for the plain
// path ("plain": round to bfloat16, multiply in float32, as CPUs without AMX do). Decided
// once per process.
bool available();

// bfloat16 values of b [k, n] once packed: ceil(n / 16) panels of ceil(k / 32) tiles, each
// 16 rows (pairs of k) x 16 columns x 2, zero-padded.
int64_t packed_count(int k, int n);
// b [k, n], b[i, j] at b + i * row_stride + j * column_stride (K^T from K's rows: 1 and
// their distance), each value rounded to bfloat16 (base/precision.h).
void pack(const float* b, int k, int n, int64_t row_stride, int64_t column_stride,
          uint16_t* packed);

// out[m, n] (rows ldc apart) = start + round(a)[m, k] @ b, b packed above, a's rows lda
// apart; start = (out if `accumulate`, else 0) + bias (if not null); then gelu_tanh if
// `gelu`: gemm() of cpu/gemm.h with a rounded to bfloat16. Each sum runs on the tiles in k
// order, two products at a time, with denormal inputs and results flushed to zero.
// Threads (OpenMP; one inside a parallel region) take tiles of 32 x 32 dynamically.
void gemm(const float* a, int64_t m, int k, int64_t lda, const uint16_t* packed, int n,
          const float* bias, bool accumulate, bool gelu, float* out, int64_t ldc);

}  // namespace musiq::cpu::amx
