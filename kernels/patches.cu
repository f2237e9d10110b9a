// extract_patches: SAME 32x32 patches of an [h, w, 3] image, (row, col, channel) order
// inside a patch, patches in row-major order, zero outside the image; cpu/patches.cc.
//
// Launch: one thread per output float (int64 index, grid-stride loop). Output writes are
// fully coalesced; a warp reads 32 consecutive floats of one image row (a patch row is 96
// contiguous floats). Pure copies: bit-identical to the CPU.
//
// Bound: DRAM, one read and one write per float.
#include <cstdint>

#include "kernels/cuda_check.h"
#include "kernels/launch.cuh"
#include "kernels/ops.cuh"

namespace musiq::cuda {
namespace {


__global__ void extract_patches_kernel(const float* __restrict__ image, int h, int w, int patch,
                                       int count_w, int pad_top, int pad_left, int64_t total,
                                       float* __restrict__ out) {
  const int64_t patch_values = int64_t{patch} * patch * 3;
  for (int64_t i = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; i < total;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t p = i / patch_values;
    const int r = static_cast<int>(i - p * patch_values);  // (dy, dx, c) inside the patch
    const int dy = r / (patch * 3);
    const int dx = (r / 3) % patch;
    const int c = r % 3;
    const int y = static_cast<int>(p / count_w) * patch - pad_top + dy;
    const int x = static_cast<int>(p % count_w) * patch - pad_left + dx;
    out[i] = (y < 0 || y >= h || x < 0 || x >= w) ? 0.0f
                                                  : image[(int64_t{y} * w + x) * 3 + c];
  }
}

}  // namespace

void extract_patches(const float* image, int h, int w, int patch, int count_h, int count_w,
                     int pad_top, int pad_left, float* out, cudaStream_t stream) {
  const int64_t total = int64_t{count_h} * count_w * patch * patch * 3;
  if (total <= 0) return;
  extract_patches_kernel<<<grid_for(total), kThreads, 0, stream>>>(image, h, w, patch, count_w, pad_top,
                                                  pad_left, total, out);
  CUDA_CHECK_LAUNCH();
}

}  // namespace musiq::cuda
