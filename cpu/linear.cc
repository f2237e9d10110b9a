// linear: a Dense layer as one gemm() call, its epilogue (bias, bias + GELU, bias + residual)
// applied per output tile while the tile is in cache. The GELU is vector_math.h's gelu_tanh
// on a vectorised exp: libm's tanh made mlp0 three times as slow as mlp1.
#include "cpu/gemm.h"
#include "cpu/ops.h"

namespace musiq::cpu {

void linear(const float* a, int64_t m, int k, const float* b, int n, const float* bias,
            Epilogue epilogue, float* out) {
  linear_packed(a, m, k, packed_for_call(b, k, n), n, bias, epilogue, out);
}

void linear_packed(const float* a, int64_t m, int k, const float* packed_b, int n,
                   const float* bias, Epilogue epilogue, float* out) {
  gemm(a, m, k, packed_b, n, bias, epilogue == Epilogue::kBiasResidual,
       epilogue == Epilogue::kBiasGelu, out, n);
}

}  // namespace musiq::cpu
