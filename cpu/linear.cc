// History of the GELU epilogue (musiq_bench encoder/mlp0_gelu/1024x768, 2 threads):
//  v1: libm std::tanh per element: 16.0-16.8 ms (qkv, the same GEMM without GELU: 4.2 ms).
//  v2: gelu_tanh from vector_math.h (exp_approx, vectorised, AVX-512 clone): 4.3-5.6 ms.
//  v3: the bias written into `out` before the GEMM (beta = 1) instead of OpenBLAS zeroing
//      it (beta = 0) and a bias pass after.
#include <cblas.h>

#include <algorithm>

#include "cpu/ops.h"
#include "cpu/vector_math.h"

namespace musiq::cpu {
namespace {

MUSIQ_VECTOR_CLONES void gelu_in_place(float* row, int n) {
#pragma omp simd
  for (int j = 0; j < n; ++j) row[j] = gelu_tanh(row[j]);
}

}  // namespace

void linear(const float* a, int64_t m, int k, const float* b, int n, const float* bias,
            Epilogue epilogue, float* out) {
  if (m == 0) return;
  // The GEMM adds to what `out` holds: the bias, or the residual plus the bias. With
  // beta = 0 OpenBLAS would first zero `out`, a pass as long as the bias pass it saves.
  const bool accumulate = epilogue == Epilogue::kBiasResidual;
  if (bias) {
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < m; ++r) {
      float* row = out + r * n;
      if (accumulate) {
        for (int j = 0; j < n; ++j) row[j] += bias[j];
      } else {
        std::copy_n(bias, n, row);
      }
    }
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<blasint>(m), n, k, 1.0f,
              a, k, b, n, accumulate || bias ? 1.0f : 0.0f, out, n);
  if (epilogue != Epilogue::kBiasGelu) return;
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < m; ++r) gelu_in_place(out + r * n, n);
}

}  // namespace musiq::cpu
