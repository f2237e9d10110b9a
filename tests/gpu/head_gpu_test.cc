// cuda::head_score against cpu::head_score. One class: the logit itself, exact. C classes:
// the same double-precision softmax mean in the same order; CUDA's exp (double, <= 1 ulp)
// may differ from glibc's in the last double bit, which the float result almost never sees:
// bound 1e-6 abs + 1e-6 rel (scores are 1..10 for AVA).
#include <vector>

#include "cpu/ops.h"
#include "engine/error.h"
#include "kernels/ops.cuh"
#include "tests/gpu/gpu_test_util.h"

namespace musiq {
namespace {

using gpu_test::DeviceBuffer;

class HeadScoreGpuTest : public ::testing::TestWithParam<int> {};

TEST_P(HeadScoreGpuTest, MatchesCpu) {
  MUSIQ_SKIP_WITHOUT_GPU();
  const int classes = GetParam();
  gpu_test::Stream stream;
  for (uint32_t seed = 81; seed < 89; ++seed) {  // several logit sets per class count
    const float spread = seed % 2 ? 5.0f : 40.0f;  // 40: a nearly one-hot softmax
    const auto logits = gpu_test::random_floats(size_t(classes), seed, -spread, spread);
    const float want = cpu::head_score(logits.data(), classes);
    DeviceBuffer<float> d_logits(logits), d_score(1);
    cuda::head_score(d_logits.get(), classes, d_score.get(), stream.get());
    stream.sync();
    const auto got = d_score.download();
    if (classes == 1)
      EXPECT_EQ(got[0], want) << "seed " << seed;
    else
      EXPECT_TRUE(gpu_test::all_close(got, {want}, 1e-6, 1e-6)) << "seed " << seed;
    EXPECT_TRUE(d_score.guard_intact());
  }
}

// 1: spaq/koniq/paq2piq; 10: ava; 2, 3: small; 1000: an ImageNet head.
INSTANTIATE_TEST_SUITE_P(Classes, HeadScoreGpuTest, ::testing::Values(1, 2, 3, 10, 1000),
                         [](const auto& info) { return gpu_test::name("c", info.param); });

TEST(HeadScoreGpu, RejectsNoClasses) {
  EXPECT_THROW(cuda::head_score(nullptr, 0, nullptr, nullptr), Error);
}

}  // namespace
}  // namespace musiq
