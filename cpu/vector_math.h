// exp and GELU in plain float arithmetic, for attention.cc's softmax and linear.cc's
// epilogue, where scalar libm expf/tanhf were the largest cost outside the GEMMs.
// GCC does not vectorise libm calls (libmvec needs -ffast-math);
// these inline into `#pragma omp simd` loops, in files built with -fno-trapping-math
// (CMakeLists.txt) so that the clamps below if-convert. The kernels calling them are
// compiled per ISA (cpu/isa.h); the AVX2 and AVX-512 ones contract to FMA.
#pragma once
#include <bit>
#include <cstdint>

namespace musiq::cpu {

// exp(x), within 1.5 ulp (measured 0.98, 1.01 with FMA) over [-104, 88.7]
// (tests/cpu_ops_test.cc, VectorMath): 0 below that, inf above, NaN stays NaN.
// Method (Cody and Waite): x = n ln2 + r with n = round(x / ln2), |r| <= ln2/2, ln2 split
// in a high part with trailing zero bits (n * kLn2Hi is exact) and a low part;
// exp(r) = 1 + r + r^2 q(r), q of degree 4 fitted for relative error by Lawson's
// iteratively reweighted least squares (3e-9 before float rounding); 2^n is applied as two
// factors 2^(n/2) so that subnormal results and n = 128 need no special case.
inline float exp_approx(float x) {
  constexpr float kLog2e = 1.44269504f, kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;
  constexpr float kRound = 12582912.0f;  // 1.5 * 2^23: t's low bits then hold n + 2^22
  constexpr float c0 = 0x1.fffffcp-2f, c1 = 0x1.555492p-3f, c2 = 0x1.5558f2p-5f,
                  c3 = 0x1.1239d4p-7f, c4 = 0x1.6a244cp-10f;
  x = x < -104.0f ? -104.0f : x;
  x = x > 89.0f ? 89.0f : x;
  const float t = x * kLog2e + kRound;
  const float n = t - kRound;
  const float r = (x - n * kLn2Hi) - n * kLn2Lo;
  const float q = (((c4 * r + c3) * r + c2) * r + c1) * r + c0;
  const float p = 1.0f + (r + r * r * q);
  // n from t's bits rather than a float-to-int cast, which is undefined for NaN.
  const int32_t ni = std::bit_cast<int32_t>(t) - std::bit_cast<int32_t>(kRound);
  const int32_t n1 = ni >> 1, n2 = ni - n1;
  return p * std::bit_cast<float>(static_cast<uint32_t>(n1 + 127) << 23) *
         std::bit_cast<float>(static_cast<uint32_t>(n2 + 127) << 23);
}

// jax.nn.gelu(approximate=True), the default of the flax version MUSIQ was trained with:
// x/2 (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3). Computed as x / (1 + exp(-2u)),
// the same function ((1 + tanh u) / 2 = 1 / (1 + exp(-2u))) without tanh's cancellation
// in 1 + tanh(u) for negative u.
inline float gelu_tanh(float x) {
  constexpr float kTwoSqrt2OverPi = 2 * 0.7978845608028654f;
  return x / (1.0f + exp_approx(-kTwoSqrt2OverPi * (x + 0.044715f * (x * x * x))));
}

}  // namespace musiq::cpu
