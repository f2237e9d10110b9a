// linear: a Dense layer as one gemm() call, its epilogue (bias, bias + GELU, bias + residual)
// applied per output tile while the tile is in cache. The GELU is vector_math.h's gelu_tanh
// on a vectorised exp: libm's tanh made mlp0 three times as slow as mlp1.
#include <vector>

#include "cpu/bf16_gemm.h"
#include "cpu/gemm.h"
#include "cpu/ops.h"

namespace musiq::cpu {

void linear(const float* a, int64_t m, int k, const float* b, int n, const float* bias,
            Epilogue epilogue, float* out) {
  linear_packed(a, m, k, packed_for_call(b, k, n), n, bias, epilogue, out);
}

void linear_packed(const float* a, int64_t m, int k, const float* packed_b, int n,
                   const float* bias, Epilogue epilogue, float* out, Precision precision) {
  if (precision != Precision::kFp32) {
    // The rounded copy of `a`, kept across calls: after the largest so far, no allocation.
    thread_local std::vector<float> rounded;
    rounded.resize(size_t(m * k));
    round_product_inputs(precision, a, m * k, rounded.data());
    a = rounded.data();
  }
  gemm(a, m, k, packed_b, n, bias, epilogue == Epilogue::kBiasResidual,
       epilogue == Epilogue::kBiasGelu, out, n);
}

void linear_bf16(const float* a, int64_t m, int k, const uint16_t* packed_b, int n,
                const float* bias, Epilogue epilogue, float* out) {
  bf16::gemm(a, m, k, k, packed_b, n, bias, epilogue == Epilogue::kBiasResidual,
            epilogue == Epilogue::kBiasGelu, out, n);
}

}  // namespace musiq::cpu
