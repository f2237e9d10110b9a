// The arithmetic a forward pass runs in (docs/precision.md): fp32, the exact default, or a
// reduced precision a user opts into: bf16 (both devices) or tf32 (GPU only).
#pragma once
#include <bit>
#include <cstdint>
#include <string>
#include <vector>

namespace musiq {

enum class Precision { kFp32, kBf16, kTf32 };

// Precision's names, in its order: what --precision and the APIs take.
inline const std::vector<std::string> kPrecisionNames = {"fp32", "bf16", "tf32"};
inline const std::string& precision_name(Precision p) { return kPrecisionNames[size_t(p)]; }

Precision parse_precision(const std::string& name);  // one of kPrecisionNames, throws otherwise

// x rounded to the nearest bfloat16 (8 significant bits), ties to even, kept as a float: its
// low 16 bits are zero. Infinities stay; a NaN stays a (quiet) NaN; finite values past the
// largest bfloat16 round to infinity, as a conversion instruction does.
inline float round_to_bf16(float x) {
  const uint32_t bits = std::bit_cast<uint32_t>(x);
  const uint32_t nearest = (bits + 0x7fffu + ((bits >> 16) & 1u)) & 0xffff0000u;
  const uint32_t quiet_nan = (bits | 0x00400000u) & 0xffff0000u;
  // A select, not an early return, so that loops over it vectorise.
  return std::bit_cast<float>((bits & 0x7fffffffu) > 0x7f800000u ? quiet_nan : nearest);
}

}  // namespace musiq
