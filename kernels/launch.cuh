// Launch shapes shared by the element-wise kernels: 256-thread blocks and a grid capped at
// 65,535 blocks (the kernels stride over the rest), and the test for 16-byte vector access.
#pragma once
#include <cstdint>

namespace musiq::cuda {

inline constexpr int kThreads = 256;
inline constexpr int64_t kMaxBlocks = 65535;

inline unsigned grid_for(int64_t work) {
  const int64_t blocks = (work + kThreads - 1) / kThreads;
  return static_cast<unsigned>(blocks < kMaxBlocks ? blocks : kMaxBlocks);
}

inline bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

}  // namespace musiq::cuda
