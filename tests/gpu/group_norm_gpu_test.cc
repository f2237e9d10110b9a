// cuda::group_norm against cpu::group_norm (in place, fused scale/bias and optional ReLU).
// Bound: 1e-5 abs + 1e-5 rel. Both sides sum x and x^2 in double, form the variance as
// E[x^2] - E[x]^2 in double and the output as the same float expression; only the order of
// the double sums differs, so the results agree to an ulp or so of |out| (the bound leaves
// room for the GPU's float rounding of mean and mul landing one ulp apart); layout bugs
// (wrong group, wrong channel) are of order 1.
#include <cstdint>
#include <tuple>
#include <vector>

#include "base/error.h"
#include "cpu/ops.h"
#include "kernels/ops.cuh"
#include "tests/gpu/gpu_test_util.h"

namespace musiq {
namespace {

using gpu_test::DeviceBuffer;

constexpr double kAbsTol = 1e-5, kRelTol = 1e-5;

struct GroupNormCase {
  int n, hw, c, groups;
  float eps;
  bool relu;
  float lo = -3.0f, hi = 3.0f;
};

std::string case_name(const GroupNormCase& c) {
  return test::name("n", c.n, "_hw", c.hw, "_c", c.c, "_g", c.groups,
                        c.relu ? "_relu" : "", c.lo > 0 ? "_offset" : "");
}

void expect_matches_cpu(const GroupNormCase& c) {
  const size_t count = size_t(c.n) * c.hw * c.c;
  auto x = test::random_floats(count, 61, c.lo, c.hi);
  const auto scale = test::random_floats(size_t(c.c), 62, 0.5f, 1.5f);
  const auto bias = test::random_floats(size_t(c.c), 63, -0.5f, 0.5f);
  gpu_test::Stream stream;
  DeviceBuffer<float> d_x(x), d_scale(scale), d_bias(bias);
  cpu::group_norm(x.data(), c.n, c.hw, c.c, c.groups, scale.data(), bias.data(), c.eps, c.relu);
  cuda::group_norm(d_x.get(), c.n, c.hw, c.c, c.groups, d_scale.get(), d_bias.get(), c.eps,
                   c.relu, stream.get());
  stream.sync();
  EXPECT_TRUE(test::all_close(d_x.download(), x, kAbsTol, kRelTol));
  EXPECT_TRUE(d_x.guard_intact()) << "wrote past the end of x";
}

// The grid the lead asked for: tokens x (hw, c), 32 groups. (256, 64) is gn_root (eps 1e-6,
// ReLU); (64, 64) gn1/gn2 and (64, 256) gn3/gn_proj (eps 1e-4); (256, 256) is not a MUSIQ
// shape but exercises c == the block size with 4x the pixels.
class GroupNormGpuGridTest
    : public ::testing::TestWithParam<std::tuple<int, int, int, bool>> {};

TEST_P(GroupNormGpuGridTest, MatchesCpu) {
  MUSIQ_SKIP_WITHOUT_GPU();
  const auto [n, hw, c, relu] = GetParam();
  expect_matches_cpu({n, hw, c, 32, hw == 256 && c == 64 ? 1e-6f : 1e-4f, relu});
}

INSTANTIATE_TEST_SUITE_P(MusiqShapes, GroupNormGpuGridTest,
                         ::testing::Combine(::testing::Values(1, 7, 64),
                                            ::testing::Values(256, 64),
                                            ::testing::Values(64, 256), ::testing::Bool()),
                         [](const auto& info) {
                           const auto& p = info.param;  // (n, hw, c, relu)
                           return test::name("n", std::get<0>(p), "_hw", std::get<1>(p),
                                                 "_c", std::get<2>(p),
                                                 std::get<3>(p) ? "_relu" : "");
                         });

class GroupNormGpuTest : public ::testing::TestWithParam<GroupNormCase> {};

TEST_P(GroupNormGpuTest, MatchesCpu) {
  MUSIQ_SKIP_WITHOUT_GPU();
  expect_matches_cpu(GetParam());
}

INSTANTIATE_TEST_SUITE_P(
    Awkward, GroupNormGpuTest,
    ::testing::Values(
        GroupNormCase{961, 256, 64, 32, 1e-6f, true},    // gn_root for a 1024x768 image
        GroupNormCase{5, 1, 64, 32, 1e-4f, false},       // one pixel: var from 2 values
        GroupNormCase{3, 1, 32, 32, 1e-4f, true},        // one value per group: var 0
        GroupNormCase{4, 9, 6, 3, 1e-4f, true},          // 3x3 map, tiny c
        GroupNormCase{3, 5, 7, 7, 1e-4f, false},         // c = 7: 252-thread blocks
        GroupNormCase{2, 50, 1, 1, 1e-4f, true},         // c = 1
        GroupNormCase{2, 3, 1024, 32, 1e-4f, false},     // the widest c supported
        GroupNormCase{2, 64, 96, 4, 1e-4f, true},        // c not a power of two
        // |mean| >> std: conv outputs with a large offset (6 +- 1, 17 std)
        GroupNormCase{7, 256, 64, 32, 1e-6f, true, 5.0f, 7.0f},
        GroupNormCase{7, 64, 256, 32, 1e-4f, false, 5.0f, 7.0f}),
    [](const auto& info) { return case_name(info.param); });

// Argument errors are reported before anything is launched (no GPU needed).
TEST(GroupNormGpu, RejectsChannelsNotDivisibleByGroups) {
  EXPECT_THROW(cuda::group_norm(nullptr, 1, 4, 10, 3, nullptr, nullptr, 1e-4f, false, nullptr),
               Error);
  EXPECT_THROW(cuda::group_norm(nullptr, 1, 4, 2048, 32, nullptr, nullptr, 1e-4f, false, nullptr),
               Error);
}

}  // namespace
}  // namespace musiq
