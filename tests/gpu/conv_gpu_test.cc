// cuda::conv2d at fp32 against its CPU twin cpu::conv2d on fresh random inputs, within
// gpu_test::gemm_abs_tol(window) and kGemmRelTol (gpu_test_util.h: 1e-5 + 1e-7 * window
// absolute, 1e-5 relative), as for linear: both sides sum the same float32 products in
// different orders. Windowed shapes run the implicit-GEMM kernel
// (kernels/conv_implicit_gemm.cu), which must leave the columns buffer as it found it;
// pointwise ones are one GEMM. bf16 and tf32: gemm_precision_gpu_test.cc.
#include <cstdint>
#include <string>
#include <vector>

#include "cpu/ops.h"
#include "kernels/ops.cuh"
#include "tests/gpu/gpu_test_util.h"

namespace musiq {
namespace {

using gpu_test::DeviceBuffer;

class ConvGpuTest : public ::testing::TestWithParam<Conv2dShape> {};

TEST_P(ConvGpuTest, MatchesCpu) {
  MUSIQ_SKIP_WITHOUT_GPU();
  const Conv2dShape s = GetParam();
  const int64_t positions = s.positions(), k = s.window();
  const auto in = test::random_floats(size_t(s.batch) * s.height * s.width * s.in_channels, 61);
  const auto kernel = test::random_floats(size_t(k) * s.out_channels, 62);
  std::vector<float> columns(size_t(positions * k)), want(size_t(positions) * s.out_channels);
  cpu::conv2d(in.data(), s, kernel.data(), columns.data(), want.data());

  gpu_test::Stream stream;
  gpu_test::Gemm gemm;
  // Values of their own in the columns, which fp32 must not touch, and in out, which it
  // must overwrite everywhere.
  const auto untouched = test::random_floats(columns.size(), 63);
  DeviceBuffer<float> d_in(in), d_kernel(kernel), d_columns(untouched);
  DeviceBuffer<float> d_out(test::random_floats(want.size(), 64));
  cuda::conv2d(d_in.get(), s, d_kernel.get(), d_columns.get(), d_out.get(), gemm.get(),
               stream.get());
  stream.sync();
  EXPECT_TRUE(
      test::all_close(d_out.download(), want, gpu_test::gemm_abs_tol(k), gpu_test::kGemmRelTol));
  EXPECT_TRUE(d_out.guard_intact());
  EXPECT_TRUE(test::all_equal(d_columns.download(), untouched)) << "fp32 wrote the columns";
  EXPECT_TRUE(d_columns.guard_intact());
}

std::string shape_name(const ::testing::TestParamInfo<Conv2dShape>& info) {
  const Conv2dShape& s = info.param;
  return test::name("n", s.batch, "_", s.height, "x", s.width, "x", s.in_channels, "_k", s.kernel,
                    "x", s.kernel, "s", s.stride, "_pad", s.pad_top, "x", s.pad_left, "_cout",
                    s.out_channels);
}

// {batch, height, width, in_channels, kernel, stride, pad_top, pad_left, out_channels,
//  out_height, out_width}; the kernel's tile is 128 positions x 64 channels, its depth
// slice 16 (kernels/conv_implicit_gemm.cu).
INSTANTIATE_TEST_SUITE_P(
    StemShapes, ConvGpuTest,
    ::testing::Values(
        // conv_root 7x7/2 SAME 32 -> 16 (pad 2 before, 3 after): 256 positions a token,
        // two position tiles; 147-deep windows, the last slice 3 deep.
        Conv2dShape{1, 32, 32, 3, 7, 2, 2, 2, 64, 16, 16},
        Conv2dShape{3, 32, 32, 3, 7, 2, 2, 2, 64, 16, 16},
        Conv2dShape{33, 32, 32, 3, 7, 2, 2, 2, 64, 16, 16},
        Conv2dShape{64, 32, 32, 3, 7, 2, 2, 2, 64, 16, 16},
        Conv2dShape{512, 32, 32, 3, 7, 2, 2, 2, 64, 16, 16},
        // conv2 3x3/1 SAME on 8x8x64: 64 positions a token, so an odd count ends in half a
        // tile; 576-deep windows, 36 whole slices.
        Conv2dShape{1, 8, 8, 64, 3, 1, 1, 1, 64, 8, 8},
        Conv2dShape{3, 8, 8, 64, 3, 1, 1, 1, 64, 8, 8},
        Conv2dShape{33, 8, 8, 64, 3, 1, 1, 1, 64, 8, 8},
        Conv2dShape{64, 8, 8, 64, 3, 1, 1, 1, 64, 8, 8},
        // conv1 and conv3/projection 1x1: the GEMM path
        Conv2dShape{33, 8, 8, 64, 1, 1, 0, 0, 64, 8, 8},
        Conv2dShape{33, 8, 8, 64, 1, 1, 0, 0, 256, 8, 8}),
    shape_name);

INSTANTIATE_TEST_SUITE_P(
    OddShapes, ConvGpuTest,
    ::testing::Values(
        // 3x3/2, cin 5, cout 6: one channel tile, mostly empty
        Conv2dShape{3, 9, 7, 5, 3, 2, 1, 1, 6, 5, 4},
        // 5x5/2, padding 1 top / 3 bottom and 2 left / 1 right, cin 3; cout 70: a second
        // channel tile of 6
        Conv2dShape{2, 11, 10, 3, 5, 2, 1, 2, 70, 6, 5},
        // 3x3/1 SAME, cin 7, cout 130: three channel tiles, the last of 2
        Conv2dShape{4, 6, 5, 7, 3, 1, 1, 1, 130, 6, 5},
        // 2x2/2 unpadded, one input channel: 4-deep windows
        Conv2dShape{2, 8, 6, 1, 2, 2, 0, 0, 9, 4, 3},
        // 1x1 with padding (top only): windowed, every window one pixel or none
        Conv2dShape{3, 5, 4, 6, 1, 1, 1, 0, 8, 6, 4},
        // 4x4/3, padding 0 top / 2 bottom and 1 left, the last column unread; cin 64
        Conv2dShape{1, 20, 19, 64, 4, 3, 0, 1, 64, 7, 6}),
    shape_name);

}  // namespace
}  // namespace musiq
