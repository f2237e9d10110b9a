#include "tests/cuda_emulator/device_memory.h"

#include <cstdlib>
#include <cstring>

namespace cuda_emulator {

void* DeviceMemory::allocate(size_t bytes, MemoryKind kind) {
  if (kind == MemoryKind::kDevice && bytes > kTotalBytes - device_bytes_) return nullptr;
  void* p = nullptr;
  // 256-byte alignment as cudaMalloc's; exactly `bytes`, so that AddressSanitizer's redzone
  // starts right after the allocation.
  if (posix_memalign(&p, 256, bytes == 0 ? 1 : bytes) != 0) return nullptr;
  if (kind == MemoryKind::kDevice) {
    std::memset(p, 0xFF, bytes);
    device_bytes_ += bytes;
  }
  blocks_[reinterpret_cast<uintptr_t>(p)] = Allocation{static_cast<const char*>(p), bytes, kind};
  return p;
}

bool DeviceMemory::release(void* p, MemoryKind kind) {
  const auto it = blocks_.find(reinterpret_cast<uintptr_t>(p));
  if (it == blocks_.end() || it->second.kind != kind) return false;
  if (kind == MemoryKind::kDevice) device_bytes_ -= it->second.bytes;
  blocks_.erase(it);
  std::free(p);
  return true;
}

std::optional<Allocation> DeviceMemory::find(const void* p) const {
  const auto address = reinterpret_cast<uintptr_t>(p);
  auto it = blocks_.upper_bound(address);
  if (it == blocks_.begin()) return std::nullopt;
  --it;
  const Allocation& a = it->second;
  // One past the end belongs to the block too (an empty range, or an end pointer).
  if (address > it->first + a.bytes) return std::nullopt;
  return a;
}

bool DeviceMemory::device_range(const void* p, size_t bytes, std::string* problem) const {
  const auto a = find(p);
  if (!a || a->kind != MemoryKind::kDevice) {
    *problem = "is not device memory";
    return false;
  }
  const auto offset = static_cast<size_t>(static_cast<const char*>(p) - a->begin);
  if (bytes > a->bytes - offset) {
    *problem = "runs " + std::to_string(bytes - (a->bytes - offset)) +
               " bytes past the end of its " + std::to_string(a->bytes) + "-byte allocation";
    return false;
  }
  return true;
}

}  // namespace cuda_emulator
