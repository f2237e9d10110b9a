// cuda::attention (fused, online softmax) against cpu::attention (scores materialised per
// block of 256 queries, exact softmax, OpenBLAS GEMMs).
// Bound: 2e-5 abs + 1e-4 rel. Outputs are convex combinations of V rows (|v| < 1 here), so
// they are O(1) or smaller; the two sides differ in summation order only (tiled q.k, online
// running sum with rescaling, P V divided by l instead of multiplied by 1/l), each a few
// float roundings of O(1) quantities, ~1e-6. An indexing, tiling or rescaling bug gives
// errors of order 0.1 or more. Inputs U(-2, 2) give scores with a std of ~1.3 after the
// 1/8 scale: softmax rows neither flat nor one-hot.
#include <cstdint>
#include <vector>

#include "cpu/ops.h"
#include "kernels/ops.cuh"
#include "tests/gpu/gpu_test_util.h"

namespace musiq {
namespace {

using gpu_test::DeviceBuffer;

constexpr double kAbsTol = 2e-5, kRelTol = 1e-4;

struct AttentionCase {
  int64_t len, q_rows;
  int heads;
};

class AttentionGpuTest : public ::testing::TestWithParam<AttentionCase> {};

TEST_P(AttentionGpuTest, MatchesCpu) {
  MUSIQ_SKIP_WITHOUT_GPU();
  const AttentionCase c = GetParam();
  const int head_dim = 64, hidden = c.heads * head_dim;
  const auto qkv = gpu_test::random_floats(size_t(c.len) * 3 * hidden, 61, -2.0f, 2.0f);
  std::vector<float> want(size_t(c.q_rows) * hidden);
  cpu::attention(qkv.data(), c.len, c.heads, head_dim, c.q_rows, want.data());

  gpu_test::Stream stream;
  DeviceBuffer<float> d_qkv(qkv), d_out(want.size());
  cuda::attention(d_qkv.get(), c.len, c.heads, head_dim, c.q_rows, d_out.get(), stream.get());
  stream.sync();
  EXPECT_TRUE(gpu_test::all_close(d_out.download(), want, kAbsTol, kRelTol));
  EXPECT_TRUE(d_out.guard_intact()) << "wrote past the end of the output";
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, AttentionGpuTest,
    ::testing::Values(
        // len 1 (CLS only), 33 (one partial tile), 961/962 (a 1024x768 image), 12001 (a
        // 12 MP photo), each with every query and with the CLS query alone (last block).
        AttentionCase{1, 1, 6}, AttentionCase{33, 33, 6}, AttentionCase{33, 1, 6},
        AttentionCase{961, 961, 6}, AttentionCase{961, 1, 6}, AttentionCase{962, 962, 6},
        AttentionCase{12001, 12001, 6}, AttentionCase{12001, 1, 6},
        // tile edges: exactly one and two tiles, one past; q_rows ending inside a tile
        AttentionCase{64, 64, 1}, AttentionCase{128, 128, 2}, AttentionCase{129, 65, 3}),
    [](const auto& info) {
      const AttentionCase& c = info.param;
      return gpu_test::name("len", c.len, "_q", c.q_rows, "_h", c.heads);
    });

TEST(AttentionGpu, RejectsUnsupportedHeadDim) {
  MUSIQ_SKIP_WITHOUT_GPU();
  gpu_test::Stream stream;
  DeviceBuffer<float> qkv(3 * 2 * 32), out(2 * 32);
  EXPECT_THROW(cuda::attention(qkv.get(), 1, 2, 32, 1, out.get(), stream.get()), Error);
}

}  // namespace
}  // namespace musiq
