// cuda::head_score against cpu::head_score. One class: the logit itself, exact. C classes:
// the same double-precision softmax mean in the same order; CUDA's exp (double, <= 1 ulp)
// may differ from glibc's in the last double bit, which the float result almost never sees:
// bound 1e-6 abs + 1e-6 rel (scores are 1..10 for AVA).
#include <vector>

#include "base/error.h"
#include "cpu/ops.h"
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
    const auto logits = test::random_floats(size_t(classes), seed, -spread, spread);
    const float want = cpu::head_score(logits.data(), classes);
    DeviceBuffer<float> d_logits(logits), d_score(1);
    cuda::head_score(d_logits.get(), 1, classes, d_score.get(), stream.get());
    stream.sync();
    const auto got = d_score.download();
    if (classes == 1)
      EXPECT_EQ(got[0], want) << "seed " << seed;
    else
      EXPECT_TRUE(test::all_close(got, {want}, 1e-6, 1e-6)) << "seed " << seed;
    EXPECT_TRUE(d_score.guard_intact());
  }
}

// 1: spaq/koniq/paq2piq; 10: ava; 2, 3: small; 1000: an ImageNet head.
INSTANTIATE_TEST_SUITE_P(Classes, HeadScoreGpuTest, ::testing::Values(1, 2, 3, 10, 1000),
                         [](const auto& info) { return test::name("c", info.param); });

TEST(HeadScoreGpu, RejectsNoClasses) {
  EXPECT_THROW(cuda::head_score(nullptr, 1, 0, nullptr, nullptr), Error);
}

// A batch's rows: one score per row, each as the CPU's for that row (130 rows: three
// blocks of the launch, the last partial).
TEST(HeadScoreGpu, OneScorePerRow) {
  MUSIQ_SKIP_WITHOUT_GPU();
  const int classes = 10, rows = 130;
  const auto logits = test::random_floats(size_t(rows) * classes, 91, -5.0f, 5.0f);
  std::vector<float> want(rows);
  for (int r = 0; r < rows; ++r) want[r] = cpu::head_score(logits.data() + r * classes, classes);
  gpu_test::Stream stream;
  DeviceBuffer<float> d_logits(logits), d_scores(rows);
  cuda::head_score(d_logits.get(), rows, classes, d_scores.get(), stream.get());
  stream.sync();
  EXPECT_TRUE(test::all_close(d_scores.download(), want, 1e-6, 1e-6));
  EXPECT_TRUE(d_scores.guard_intact());
}

}  // namespace
}  // namespace musiq
