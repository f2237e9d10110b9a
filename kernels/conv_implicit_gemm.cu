// conv2d in fp32 without im2col: the GEMM [positions, window] x [window, cout] with its left
// operand gathered from the NHWC input as it is staged, so no columns reach global memory.
// Any Conv2dShape (kernel, stride, padding, channel counts); built for MUSIQ's stem,
// conv_root (7x7/2, 3 -> 64 channels, 147-deep windows) and conv2 (3x3/1, 64 -> 64, 576).
//
// One 256-thread block per tile of 128 output positions x 64 output channels (a grid row
// per 64 channels of cout). Positions are flattened over (image, y, x), so a tile spans
// tokens where a token has fewer than 128 (conv2: 64 each) and the last tile is cut.
// Per 16-deep slice of the window, the block stages:
// - the windows' slice, transposed to [depth][position] (a row pitch of 132 floats keeps
//   each row 16-byte aligned): the 16 depth indices run across consecutive threads, so a
//   warp reads 16 consecutive input floats of one pixel run ((dy, dx, c) order) for two
//   positions; zero padding is the bounds test on (y, x), done there, never stored;
// - the kernel's slice [depth][channel], 64 consecutive floats per row (coalesced).
// Each thread then holds 8 positions x 4 channels in registers: per depth step, two float4
// shared loads of positions (two addresses per warp: broadcasts) and one of channels, for
// 32 FMAs. Float32 accumulators, one fmaf per product, in window order: a product and its
// sum are rounded once together, as cuBLASLt's fp32 kernels do; the CPU twin's GEMM sums
// in another order, hence the GEMM tolerance in the tests (gpu_test::gemm_abs_tol).
//
// What limits it (H100 SXM: 132 SMs, 128 fp32 lanes per SM, 67 TFLOP/s; PCIe 51; 228 KB
// shared memory and 64K registers per SM): arithmetic. conv_root at 1024x768 is 4.63
// GFLOP against 75 MB of DRAM traffic (the 12 MB of input, read again from L1/L2 for each
// of the ~12 windows that overlap a pixel, and 63 MB of output), 62 FLOP per byte against
// the machine's 20 (67 TFLOP/s / 3.35 TB/s); conv2, 4.54 GFLOP against 32 MB. Per warp and
// depth step: 32 FFMA issue slots against 3 LDS.128 (4 shared wavefronts: half the shared
// pipe's one per clock while the FMAs run at full rate); per 16-deep slice a thread spends
// ~180 instructions staging (8 gathered input loads with their bounds tests, 4 kernel
// loads, two integer divisions for the slice's (dy, dx, c)) against 512 FFMAs, and the
// block waits at two barriers. 3 blocks per SM (the launch bounds hold registers to 80;
// nvcc 13.0 uses 79 for sm_90, no spills; 14.6 KB of shared memory each), 24 warps, hide
// the barriers' and loads' latency in part. At 1024x768 (961 tokens in stem chunks of 512
// and 449) conv_root runs 1,024 and 898 blocks, 2.6 and 2.3 times the 396 resident:
// expect 55-65 % of the fp32 peak, ~115-135 us on SXM (it also spends 13 of its 160 depth
// steps on the last slice's zeros: 147 = 9 x 16 + 3). conv2 runs 256 and 225 blocks, fewer
// than fit, so SMs hold one or two: expect 45-60 %, ~115-150 us. Floors: 69 and 68 us
// (bench/PROFILING.md, the stage table).
//
// Why not for bf16 or tf32: their products run on tensor cores, whose operands must sit in
// cuBLASLt's or WMMA's fragment layouts; those keep im2col + cuBLASLt (kernels/conv.cu).
#include "kernels/conv_implicit_gemm.cuh"

#include <climits>
#include <cstdint>
#include <string>

#include "base/error.h"
#include "kernels/cuda_check.h"

namespace musiq::cuda {
namespace {

constexpr int kTilePositions = 128;
constexpr int kTileChannels = 64;
constexpr int kSliceDepth = 16;
constexpr int kThreadPositions = 8;
constexpr int kThreadChannels = 4;
constexpr int kBlockThreads =
    (kTilePositions / kThreadPositions) * (kTileChannels / kThreadChannels);
constexpr int kWindowPitch = kTilePositions + 4;
// Staging: each thread loads one depth index of the windows' slice for this many positions,
// and this many rows of the kernel's slice for one channel.
constexpr int kStagePositionStep = kBlockThreads / kSliceDepth;
constexpr int kStagePositions = kTilePositions / kStagePositionStep;
constexpr int kStageKernelStep = kBlockThreads / kTileChannels;
constexpr int kStageKernelRows = kSliceDepth / kStageKernelStep;
static_assert(kBlockThreads == 256 && kTilePositions % kStagePositionStep == 0 &&
              kSliceDepth % kStageKernelStep == 0);

__device__ __forceinline__ float4 load4(const float* p) {
  return *reinterpret_cast<const float4*>(p);
}

__global__ void __launch_bounds__(kBlockThreads, 3)
    conv2d_implicit_gemm_kernel(const float* __restrict__ in, Conv2dShape s, int window,
                                int64_t positions, const float* __restrict__ hwio,
                                float* __restrict__ out) {
  __shared__ __align__(16) float windows[kSliceDepth][kWindowPitch];
  __shared__ __align__(16) float weights[kSliceDepth][kTileChannels];
  // Per position of the tile: the window's top-left input pixel (may lie in the padding)
  // and its offset in `in` (channel 0), found once per block.
  __shared__ int window_top[kTilePositions];
  __shared__ int window_left[kTilePositions];
  __shared__ int64_t window_origin[kTilePositions];

  const int tid = static_cast<int>(threadIdx.x);
  const int64_t first = int64_t{blockIdx.x} * kTilePositions;
  const int channel0 = static_cast<int>(blockIdx.y) * kTileChannels;
  const int64_t image_positions = int64_t{s.out_height} * s.out_width;
  for (int m = tid; m < kTilePositions; m += kBlockThreads) {
    const int64_t p = first + m;
    if (p < positions) {
      const int64_t img = p / image_positions;
      const int r = static_cast<int>(p - img * image_positions);
      const int y = r / s.out_width * s.stride - s.pad_top;
      const int x = r % s.out_width * s.stride - s.pad_left;
      window_top[m] = y;
      window_left[m] = x;
      window_origin[m] = ((img * s.height + y) * s.width + x) * s.in_channels;
    } else {  // past the last position: every tap above the image, so all zeros
      window_top[m] = -s.kernel;
      window_left[m] = 0;
      window_origin[m] = 0;
    }
  }

  const int stage_depth = tid % kSliceDepth, stage_position = tid / kSliceDepth;
  const int stage_channel = tid % kTileChannels, stage_row = tid / kTileChannels;
  const bool channel_inside = channel0 + stage_channel < s.out_channels;
  const int positions0 = (tid / (kTileChannels / kThreadChannels)) * kThreadPositions;
  const int channels0 = (tid % (kTileChannels / kThreadChannels)) * kThreadChannels;
  float acc[kThreadPositions][kThreadChannels] = {};

  for (int k0 = 0; k0 < window; k0 += kSliceDepth) {
    __syncthreads();  // the previous slice is consumed (the first time: the origins are set)
    {
      const int k = k0 + stage_depth;
      const int tap = k / s.in_channels, c = k - tap * s.in_channels;
      const int dy = tap / s.kernel, dx = tap - dy * s.kernel;
      const int64_t tap_offset = (int64_t{dy} * s.width + dx) * s.in_channels + c;
      const bool tap_inside = k < window;
#pragma unroll
      for (int i = 0; i < kStagePositions; ++i) {
        const int m = stage_position + i * kStagePositionStep;
        const int y = window_top[m] + dy, x = window_left[m] + dx;
        const bool inside = tap_inside &&
                            static_cast<unsigned>(y) < static_cast<unsigned>(s.height) &&
                            static_cast<unsigned>(x) < static_cast<unsigned>(s.width);
        windows[stage_depth][m] = inside ? in[window_origin[m] + tap_offset] : 0.0f;
      }
#pragma unroll
      for (int i = 0; i < kStageKernelRows; ++i) {
        const int row = stage_row + i * kStageKernelStep, k_row = k0 + row;
        weights[row][stage_channel] =
            channel_inside && k_row < window
                ? hwio[int64_t{k_row} * s.out_channels + channel0 + stage_channel]
                : 0.0f;
      }
    }
    __syncthreads();
#pragma unroll
    for (int d = 0; d < kSliceDepth; ++d) {
      const float4 a0 = load4(&windows[d][positions0]), a1 = load4(&windows[d][positions0 + 4]);
      const float4 b4 = load4(&weights[d][channels0]);
      const float a[kThreadPositions] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
      const float b[kThreadChannels] = {b4.x, b4.y, b4.z, b4.w};
#pragma unroll
      for (int i = 0; i < kThreadPositions; ++i)
#pragma unroll
        for (int j = 0; j < kThreadChannels; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
    }
  }

  // A warp writes two positions' 64 consecutive channels per row of acc.
#pragma unroll
  for (int i = 0; i < kThreadPositions; ++i) {
    const int64_t p = first + positions0 + i;
    if (p >= positions) break;
#pragma unroll
    for (int j = 0; j < kThreadChannels; ++j) {
      const int channel = channel0 + channels0 + j;
      if (channel < s.out_channels) out[p * s.out_channels + channel] = acc[i][j];
    }
  }
}

}  // namespace

void conv2d_implicit_gemm(const float* in, const Conv2dShape& s, const float* kernel, float* out,
                          cudaStream_t stream) {
  const int64_t tiles = (s.positions() + kTilePositions - 1) / kTilePositions;
  const int64_t channel_tiles = (int64_t{s.out_channels} + kTileChannels - 1) / kTileChannels;
  if (tiles > INT_MAX || channel_tiles > 65535 || s.window() > INT_MAX - kSliceDepth)
    throw Error("conv2d: " + std::to_string(s.positions()) + " positions x " +
                std::to_string(s.out_channels) + " channels, window " + std::to_string(s.window()) +
                ", past the implicit-GEMM kernel's grid");
  const dim3 grid(static_cast<unsigned>(tiles), static_cast<unsigned>(channel_tiles));
  conv2d_implicit_gemm_kernel<<<grid, kBlockThreads, 0, stream>>>(
      in, s, static_cast<int>(s.window()), s.positions(), kernel, out);
  CUDA_CHECK_LAUNCH();
}

}  // namespace musiq::cuda
