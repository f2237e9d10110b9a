// cuda::max_pool_3x3_s2 against cpu::max_pool_3x3_s2: bit for bit (max is exact, and the
// comparison is the CPU's). All-negative inputs check that SAME padding never wins.
#include <cstdint>
#include <vector>

#include "cpu/ops.h"
#include "kernels/ops.cuh"
#include "tests/gpu/gpu_test_util.h"

namespace musiq {
namespace {

using gpu_test::DeviceBuffer;

struct MaxPoolCase {
  int n, h, w, c;
  int offset = 0;    // shifts in/out pointers: 1 forces the scalar path
  float lo = -2.0f, hi = 2.0f;
};

// SAME output size for stride 2.
int same_out(int size) { return (size + 1) / 2; }

class MaxPoolGpuTest : public ::testing::TestWithParam<MaxPoolCase> {};

TEST_P(MaxPoolGpuTest, MatchesCpuBitForBit) {
  MUSIQ_SKIP_WITHOUT_GPU();
  const MaxPoolCase p = GetParam();
  const int oh = same_out(p.h), ow = same_out(p.w);
  const size_t in_count = size_t(p.n) * p.h * p.w * p.c;
  const size_t out_count = size_t(p.n) * oh * ow * p.c;
  const auto in = test::random_floats(in_count + p.offset, 71, p.lo, p.hi);
  std::vector<float> want(out_count);
  cpu::max_pool_3x3_s2(in.data() + p.offset, p.n, p.h, p.w, p.c, oh, ow, want.data());

  gpu_test::Stream stream;
  DeviceBuffer<float> d_in(in), d_out(out_count + p.offset);
  cuda::max_pool_3x3_s2(d_in.get() + p.offset, p.n, p.h, p.w, p.c, oh, ow,
                        d_out.get() + p.offset, stream.get());
  stream.sync();
  const auto all = d_out.download();
  EXPECT_TRUE(test::all_equal(std::vector<float>(all.begin() + p.offset, all.end()), want));
  EXPECT_TRUE(d_out.guard_intact()) << "wrote past the end of the output";
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, MaxPoolGpuTest,
    ::testing::Values(
        // MUSIQ's stem: [tokens, 16, 16, 64] -> [tokens, 8, 8, 64]
        MaxPoolCase{1, 16, 16, 64}, MaxPoolCase{7, 16, 16, 64}, MaxPoolCase{64, 16, 16, 64},
        MaxPoolCase{961, 16, 16, 64},
        MaxPoolCase{7, 16, 16, 64, 0, -5.0f, -1.0f},   // all negative: padding never wins
        // odd sizes: 15 -> 8 (no padding before), 17 -> 9 (one before, one after)
        MaxPoolCase{3, 15, 15, 64}, MaxPoolCase{3, 17, 17, 64, 0, -5.0f, -1.0f},
        MaxPoolCase{2, 16, 9, 64}, MaxPoolCase{2, 1, 1, 8},
        // scalar path: c not a multiple of 4, or misaligned pointers
        MaxPoolCase{5, 16, 16, 3}, MaxPoolCase{5, 13, 16, 7}, MaxPoolCase{7, 16, 16, 64, 1}),
    [](const auto& info) {
      const MaxPoolCase& p = info.param;
      return test::name("n", p.n, "_", p.h, "x", p.w, "_c", p.c,
                            p.offset ? "_unaligned" : "", p.hi < 0 ? "_negative" : "");
    });

}  // namespace
}  // namespace musiq
