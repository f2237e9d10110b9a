// AddressSanitizer's manual poisoning, a no-op in other builds: the bytes after a block's
// dynamic shared memory fault on any access in the sanitizer build.
#pragma once
#include <cstddef>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#endif

namespace cuda_emulator {

#if defined(__SANITIZE_ADDRESS__)
inline void poison_for_sanitizer(const void* p, size_t bytes) { ASAN_POISON_MEMORY_REGION(p, bytes); }
inline void unpoison_for_sanitizer(const void* p, size_t bytes) {
  ASAN_UNPOISON_MEMORY_REGION(p, bytes);
}
#else
inline void poison_for_sanitizer(const void*, size_t) {}
inline void unpoison_for_sanitizer(const void*, size_t) {}
#endif

}  // namespace cuda_emulator
