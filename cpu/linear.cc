#include <cblas.h>

#include <cmath>

#include "cpu/ops.h"

namespace musiq::cpu {
namespace {

// jax.nn.gelu(approximate=True), the default of the flax version MUSIQ was trained with.
inline float gelu_tanh(float x) {
  constexpr float kSqrt2OverPi = 0.7978845608028654f;
  return x * (0.5f * (1.0f + std::tanh(kSqrt2OverPi * (x + 0.044715f * (x * x * x)))));
}

}  // namespace

void linear(const float* a, int64_t m, int k, const float* b, int n, const float* bias,
            Epilogue epilogue, float* out) {
  if (m == 0) return;
  const bool accumulate = epilogue == Epilogue::kBiasResidual;
  if (accumulate && bias) {
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < m; ++r)
      for (int j = 0; j < n; ++j) out[r * n + j] += bias[j];
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<blasint>(m), n, k, 1.0f,
              a, k, b, n, accumulate ? 1.0f : 0.0f, out, n);
  if (accumulate || (!bias && epilogue == Epilogue::kBias)) return;
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < m; ++r) {
    float* row = out + r * n;
    for (int j = 0; j < n; ++j) {
      const float v = bias ? row[j] + bias[j] : row[j];
      row[j] = epilogue == Epilogue::kBiasGelu ? gelu_tanh(v) : v;
    }
  }
}

}  // namespace musiq::cpu
