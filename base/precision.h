// The arithmetic a forward pass runs in (docs/precision.md): fp32, the exact default, or a
// reduced precision a user opts into: bf16 (both devices) or tf32 (GPU only; the CPU ops
// compute it too, as the GPU's twins in tests).
// C++17: nvcc compiles the kernels, which include it, as C++17 (hence memcpy, not
// std::bit_cast; the compilers make either a plain register move).
#pragma once
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace musiq {

enum class Precision { kFp32, kBf16, kTf32 };

// Precision's names, in its order: what --precision and the APIs take.
inline const std::vector<std::string> kPrecisionNames = {"fp32", "bf16", "tf32"};
inline const std::string& precision_name(Precision p) { return kPrecisionNames[size_t(p)]; }

Precision parse_precision(const std::string& name);  // one of kPrecisionNames, throws otherwise

// x rounded to the nearest float whose low `bits` bits are zero (0 < bits < 23), ties to
// even. Infinities stay; a NaN stays a (quiet) NaN; finite values past the largest such float
// round to infinity, as a conversion instruction does.
inline float round_low_bits(float x, int bits) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  const uint32_t kept = ~((1u << bits) - 1u);
  const uint32_t nearest = (u + ((1u << (bits - 1)) - 1u) + ((u >> bits) & 1u)) & kept;
  const uint32_t quiet_nan = (u | 0x00400000u) & kept;
  // A select, not an early return, so that loops over it vectorise.
  const uint32_t rounded = (u & 0x7fffffffu) > 0x7f800000u ? quiet_nan : nearest;
  float r;
  std::memcpy(&r, &rounded, sizeof r);
  return r;
}

// The nearest bfloat16 (8 significant bits), kept as a float: its low 16 bits are zero.
inline float round_to_bf16(float x) { return round_low_bits(x, 16); }
// The nearest tf32 (11 significant bits), kept as a float: its low 13 bits are zero.
inline float round_to_tf32(float x) { return round_low_bits(x, 13); }

// The bits a precision drops from a product's input (docs/precision.md); 0 for fp32.
constexpr int dropped_bits(Precision p) {
  return p == Precision::kBf16 ? 16 : p == Precision::kTf32 ? 13 : 0;
}

// x as it enters a product at precision p: rounded to bfloat16 or tf32, or as it is.
inline float round_for_products(Precision p, float x) {
  return p == Precision::kFp32 ? x : round_low_bits(x, dropped_bits(p));
}

}  // namespace musiq
