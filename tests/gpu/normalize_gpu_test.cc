// cuda::normalize_image against cpu::normalize_image: bit for bit (the GPU evaluates the
// same three float operations with round-to-nearest intrinsics, no FMA contraction).
#include <cstdint>
#include <vector>

#include "cpu/ops.h"
#include "kernels/ops.cuh"
#include "tests/gpu/gpu_test_util.h"

namespace musiq {
namespace {

using gpu_test::DeviceBuffer;

struct NormalizeCase {
  int64_t count;
  int offset;  // elements the pointers are shifted by: 1 forces the scalar path
};

class NormalizeImageGpuTest : public ::testing::TestWithParam<NormalizeCase> {};

TEST_P(NormalizeImageGpuTest, MatchesCpuBitForBit) {
  MUSIQ_SKIP_WITHOUT_GPU();
  const auto [count, offset] = GetParam();
  const auto rgb = test::random_ints<uint8_t>(size_t(count + offset), 11, 0, 255);
  std::vector<float> want(static_cast<size_t>(count));
  cpu::normalize_image(rgb.data() + offset, count, want.data());

  gpu_test::Stream stream;
  DeviceBuffer<uint8_t> d_rgb(rgb);
  DeviceBuffer<float> d_out(size_t(count + offset));
  cuda::normalize_image(d_rgb.get() + offset, count, d_out.get() + offset, stream.get());
  stream.sync();
  const auto all = d_out.download();
  const std::vector<float> got(all.begin() + offset, all.end());
  EXPECT_TRUE(test::all_equal(got, want));
  EXPECT_TRUE(d_out.guard_intact()) << "wrote past the end of the output";
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, NormalizeImageGpuTest,
    ::testing::Values(NormalizeCase{1, 0}, NormalizeCase{3, 0}, NormalizeCase{7, 0},
                      NormalizeCase{33, 0}, NormalizeCase{32 * 32 * 3, 0},
                      NormalizeCase{224 * 150 * 3, 0},   // a resized scale
                      NormalizeCase{1024 * 768 * 3, 0},  // the spec's 961-token image
                      NormalizeCase{4001 * 3001 * 3, 0}, // 12 MP, count not a multiple of 4
                      NormalizeCase{33, 1}, NormalizeCase{1024 * 768 * 3 + 1, 3}),
    [](const auto& info) {
      return test::name("n", info.param.count, "_off", info.param.offset);
    });

// Every byte value once, in order: the whole lookup is exact.
TEST(NormalizeImageGpu, AllByteValues) {
  MUSIQ_SKIP_WITHOUT_GPU();
  std::vector<uint8_t> rgb(256);
  for (int i = 0; i < 256; ++i) rgb[size_t(i)] = uint8_t(i);
  std::vector<float> want(256);
  cpu::normalize_image(rgb.data(), 256, want.data());
  gpu_test::Stream stream;
  DeviceBuffer<uint8_t> d_rgb(rgb);
  DeviceBuffer<float> d_out(256);
  cuda::normalize_image(d_rgb.get(), 256, d_out.get(), stream.get());
  stream.sync();
  EXPECT_TRUE(test::all_equal(d_out.download(), want));
  EXPECT_EQ(want.front(), -1.0f);
  EXPECT_EQ(want.back(), 1.0f);
}

}  // namespace
}  // namespace musiq
