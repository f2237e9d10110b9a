// History of the GELU epilogue (musiq_bench encoder/mlp0_gelu/1024x768, 2 threads):
//  v1: libm std::tanh per element: 16.0-16.8 ms (qkv, the same GEMM without GELU: 4.2 ms).
//  v2: gelu_tanh from vector_math.h (exp_approx, vectorised, AVX-512 clone): 4.3-5.6 ms.
//  v3: the bias written into `out` before the GEMM (beta = 1) instead of OpenBLAS zeroing
//      it (beta = 0) and a bias pass after.
//  v4: our own GEMM (cpu/gemm.cc), the GELU applied per output tile while in cache.
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
