// AddressSanitizer's manual poisoning, a no-op in other builds: the bytes after a block's
// dynamic shared memory fault on any access in the sanitizer build. CUDA_EMULATOR_ASAN is
// set by CMake: the emulator's own code is not instrumented (CMakeLists.txt beside this).
#pragma once
#include <cstddef>

#ifdef CUDA_EMULATOR_ASAN
#include <sanitizer/asan_interface.h>
#endif

namespace cuda_emulator {

#ifdef CUDA_EMULATOR_ASAN
inline void poison_for_sanitizer(const void* p, size_t bytes) {
  __asan_poison_memory_region(p, bytes);
}
inline void unpoison_for_sanitizer(const void* p, size_t bytes) {
  __asan_unpoison_memory_region(p, bytes);
}
#else
inline void poison_for_sanitizer(const void*, size_t) {}
inline void unpoison_for_sanitizer(const void*, size_t) {}
#endif

}  // namespace cuda_emulator
