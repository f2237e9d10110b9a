#include "tests/cuda_emulator/gemm_operands.h"

#include <bit>
#include <cstring>

#include "base/precision.h"

namespace cuda_emulator {
namespace {

float value_at(const void* p, cudaDataType type, int64_t i) {
  if (type == CUDA_R_32F) return static_cast<const float*>(p)[i];
  uint16_t bf16;
  std::memcpy(&bf16, static_cast<const unsigned char*>(p) + i * 2, 2);
  return std::bit_cast<float>(uint32_t{bf16} << 16);
}

}  // namespace

std::shared_ptr<std::vector<float>> float_operand(const void* p, cudaDataType type, int64_t rows,
                                                  int64_t cols, int64_t ld, bool tf32) {
  auto copy = std::make_shared<std::vector<float>>(size_t(ld * (cols - 1) + rows));
  for (int64_t c = 0; c < cols; ++c)
    for (int64_t r = 0; r < rows; ++r) {
      const float v = value_at(p, type, c * ld + r);
      (*copy)[size_t(c * ld + r)] = tf32 ? musiq::round_to_tf32(v) : v;
    }
  return copy;
}

}  // namespace cuda_emulator
