// cuda::layer_norm against cpu::layer_norm.
// Bound: 1e-5 abs + 1e-5 rel. Both sides form the same float mean (double sums) and the
// same output expression; they differ only in the variance (GPU: float sum of centred
// squares; CPU: double E[x^2] - E[x]^2), i.e. a relative error of ~1e-7 in inv_std, so
// expected errors are ~1e-7 of |out| and the bound leaves two orders of margin while still
// catching any indexing or reduction bug (those give errors of order 1).
#include <cstdint>
#include <vector>

#include "cpu/ops.h"
#include "kernels/ops.cuh"
#include "tests/gpu/gpu_test_util.h"

namespace musiq {
namespace {

using gpu_test::DeviceBuffer;

constexpr double kAbsTol = 1e-5, kRelTol = 1e-5;
constexpr float kEps = 1e-6f;  // MUSIQ's LayerNorm epsilon

struct LayerNormCase {
  int64_t rows;
  int dim;
  int offset;        // shifts x and out by this many floats: 1 forces the scalar path
  float lo, hi;      // input range: [lo, hi) (offset ranges test |mean| >> std)
};

class LayerNormGpuTest : public ::testing::TestWithParam<LayerNormCase> {};

TEST_P(LayerNormGpuTest, MatchesCpu) {
  MUSIQ_SKIP_WITHOUT_GPU();
  const LayerNormCase c = GetParam();
  const size_t n = size_t(c.rows) * c.dim;
  const auto x = test::random_floats(n + c.offset, 21, c.lo, c.hi);
  const auto scale = test::random_floats(size_t(c.dim), 22, 0.5f, 1.5f);
  const auto bias = test::random_floats(size_t(c.dim), 23, -0.5f, 0.5f);
  std::vector<float> want(n);
  cpu::layer_norm(x.data() + c.offset, c.rows, c.dim, scale.data(), bias.data(), kEps,
                  want.data());

  gpu_test::Stream stream;
  DeviceBuffer<float> d_x(x), d_scale(scale), d_bias(bias), d_out(n + c.offset);
  cuda::layer_norm(d_x.get() + c.offset, c.rows, c.dim, d_scale.get(), d_bias.get(), kEps,
                   d_out.get() + c.offset, stream.get());
  stream.sync();
  const auto all = d_out.download();
  const std::vector<float> got(all.begin() + c.offset, all.end());
  EXPECT_TRUE(test::all_close(got, want, kAbsTol, kRelTol));
  EXPECT_TRUE(d_out.guard_intact()) << "wrote past the end of the output";
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, LayerNormGpuTest,
    ::testing::Values(
        // MUSIQ: hidden 384; 962 = 961 tokens + CLS (1024x768), 12001 ~ a 12 MP photo.
        LayerNormCase{1, 384, 0, -2, 2}, LayerNormCase{33, 384, 0, -2, 2},
        LayerNormCase{961, 384, 0, -2, 2}, LayerNormCase{962, 384, 0, -2, 2},
        LayerNormCase{12001, 384, 0, -2, 2},
        // the MLP width, and awkward widths (scalar path, partial warps, dim < 32)
        LayerNormCase{33, 1152, 0, -2, 2}, LayerNormCase{7, 1, 0, -2, 2},
        LayerNormCase{5, 3, 0, -2, 2}, LayerNormCase{33, 31, 0, -2, 2},
        LayerNormCase{9, 385, 0, -2, 2},
        // misaligned pointers: same arithmetic through the scalar kernel
        LayerNormCase{33, 384, 1, -2, 2},
        // |mean| >> std: 10 +- 1 (17 std) and -100 +- 0.5 (350 std)
        LayerNormCase{961, 384, 0, 9, 11}, LayerNormCase{961, 384, 0, -100.5f, -99.5f}),
    [](const auto& info) {
      const LayerNormCase& c = info.param;
      std::string name = test::name("rows", c.rows, "_dim", c.dim);
      if (c.offset) name += "_unaligned";
      if (c.lo > 0) name += "_mean10";
      if (c.hi < -50) name += "_meanm100";
      return name;
    });

// rows * dim > 2^31: int64 offsets (opt-in: MUSIQ_GPU_LARGE_TESTS=1; ~26 GB host memory,
// ~17 GB device memory).
TEST(LayerNormGpuLarge, RowsTimesDimPast2To31) {
  MUSIQ_SKIP_WITHOUT_GPU();
  if (!gpu_test::large_tests_enabled()) GTEST_SKIP() << "set MUSIQ_GPU_LARGE_TESTS=1 to run";
  const int dim = 384;
  const int64_t rows = (int64_t{1} << 31) / dim + 3;
  const size_t n = size_t(rows) * dim;
  size_t free_bytes = 0, total_bytes = 0;
  CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
  if (free_bytes < 2 * n * sizeof(float) + (size_t{1} << 30))
    GTEST_SKIP() << "needs " << (2 * n * sizeof(float) >> 30) << " GiB of device memory";
  // Cheap deterministic pattern (a hash of the index), not zeros, varying per row.
  std::vector<float> x(n);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < int64_t(n); ++i) {
    uint64_t h = uint64_t(i) * 0x9E3779B97F4A7C15ull;
    h ^= h >> 29;
    x[size_t(i)] = float(h % 20011) / 5000.0f - 2.0f + float(i / dim % 7);
  }
  const auto scale = test::random_floats(dim, 22, 0.5f, 1.5f);
  const auto bias = test::random_floats(dim, 23, -0.5f, 0.5f);
  std::vector<float> want(n);
  cpu::layer_norm(x.data(), rows, dim, scale.data(), bias.data(), kEps, want.data());
  gpu_test::Stream stream;
  DeviceBuffer<float> d_x(x), d_scale(scale), d_bias(bias);
  x = std::vector<float>();  // release host memory early
  DeviceBuffer<float> d_out(n);
  cuda::layer_norm(d_x.get(), rows, dim, d_scale.get(), d_bias.get(), kEps, d_out.get(),
                   stream.get());
  stream.sync();
  EXPECT_TRUE(test::all_close(d_out.download(), want, kAbsTol, kRelTol));
  EXPECT_TRUE(d_out.guard_intact());
}

}  // namespace
}  // namespace musiq
