// normalize_image: out[i] = -1 + (pixel / 255) * 2, the official normalize_value_range.
//
// Launch: 256 threads, grid-stride loop; each thread turns 4 bytes (one 32-bit load) into
// one float4 store when `rgb` is 4-byte and `out` 16-byte aligned, else one byte at a time.
// Why: a pure streaming op (1 byte in, 4 bytes out); wide accesses and a grid capped at a
// few waves are all it needs. Offsets are int64 (a 12 MP image is 36 M bytes, and batches
// of images pass 2^31 floats).
//
// Exactness: the CPU result is bit-identical by construction. The three float operations
// use explicit round-to-nearest intrinsics (__fdiv_rn, __fmul_rn, __fadd_rn) so nvcc can
// neither contract them into an FMA nor use an approximate division (even under
// --use_fast_math). The test compares with zero tolerance.
#include <cstdint>

#include "kernels/cuda_check.h"
#include "kernels/launch.cuh"
#include "kernels/ops.cuh"

namespace musiq::cuda {
namespace {


__device__ __forceinline__ float normalize_pixel(uint8_t v) {
  return __fadd_rn(-1.0f, __fmul_rn(__fdiv_rn(static_cast<float>(v), 255.0f), 2.0f));
}

__global__ void normalize_image_vec4_kernel(const uint32_t* __restrict__ rgb4, int64_t quads,
                                            float4* __restrict__ out4) {
  const int64_t stride = int64_t{gridDim.x} * blockDim.x;
  for (int64_t i = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; i < quads; i += stride) {
    const uint32_t p = rgb4[i];  // little-endian: byte 0 is the lowest
    out4[i] = make_float4(normalize_pixel(p & 0xFFu), normalize_pixel((p >> 8) & 0xFFu),
                          normalize_pixel((p >> 16) & 0xFFu), normalize_pixel(p >> 24));
  }
}

__global__ void normalize_image_kernel(const uint8_t* __restrict__ rgb, int64_t count,
                                       float* __restrict__ out) {
  const int64_t stride = int64_t{gridDim.x} * blockDim.x;
  for (int64_t i = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; i < count; i += stride)
    out[i] = normalize_pixel(rgb[i]);
}

}  // namespace

void normalize_image(const uint8_t* rgb, int64_t count, float* out, cudaStream_t stream) {
  if (count <= 0) return;
  const bool aligned = reinterpret_cast<uintptr_t>(rgb) % 4 == 0 &&
                       reinterpret_cast<uintptr_t>(out) % 16 == 0;
  int64_t done = 0;
  if (aligned && count >= 4) {
    const int64_t quads = count / 4;
    normalize_image_vec4_kernel<<<grid_for(quads), kThreads, 0, stream>>>(
        reinterpret_cast<const uint32_t*>(rgb), quads, reinterpret_cast<float4*>(out));
    CUDA_CHECK_LAUNCH();
    done = quads * 4;
  }
  if (done < count) {
    normalize_image_kernel<<<grid_for(count - done), kThreads, 0, stream>>>(
        rgb + done, count - done, out + done);
    CUDA_CHECK_LAUNCH();
  }
}

}  // namespace musiq::cuda
