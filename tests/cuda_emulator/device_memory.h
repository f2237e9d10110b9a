// Device memory and pinned host memory of the emulator: host allocations registered by
// address, so that copies, memsets, kernel arguments and cuBLAS calls can be checked
// against them. New device memory is filled with NaN bytes (0xFF), so a kernel that reads
// what nobody wrote produces NaN instead of a plausible zero.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>

namespace cuda_emulator {

enum class MemoryKind { kDevice, kPinnedHost };

struct Allocation {
  const char* begin = nullptr;
  size_t bytes = 0;
  MemoryKind kind = MemoryKind::kDevice;
};

class DeviceMemory {
 public:
  static constexpr size_t kTotalBytes = size_t{80} << 30;  // what cudaMemGetInfo reports

  void* allocate(size_t bytes, MemoryKind kind);  // nullptr when out of memory
  bool release(void* p, MemoryKind kind);         // false: not the start of such a block
  std::optional<Allocation> find(const void* p) const;
  // Whether [p, p + bytes) lies inside one device allocation; else `problem` says why.
  bool device_range(const void* p, size_t bytes, std::string* problem) const;
  size_t device_bytes_in_use() const { return device_bytes_; }

 private:
  std::map<uintptr_t, Allocation> blocks_;
  size_t device_bytes_ = 0;
};

}  // namespace cuda_emulator
