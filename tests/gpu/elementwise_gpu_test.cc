// cuda::add_embeddings and cuda::add_relu against the CPU: the CPU's float operations one
// for one, compared bit for bit.
#include <cstdint>
#include <vector>

#include "cpu/ops.h"
#include "kernels/ops.cuh"
#include "tests/gpu/gpu_test_util.h"

namespace musiq {
namespace {

using gpu_test::DeviceBuffer;

// ---- add_embeddings -----------------------------------------------------------------------

struct EmbeddingsCase {
  int64_t rows;
  int dim;
  int offset;  // shifts x and the tables: 1 forces the scalar path
};

class AddEmbeddingsGpuTest : public ::testing::TestWithParam<EmbeddingsCase> {};

TEST_P(AddEmbeddingsGpuTest, MatchesCpuBitForBit) {
  MUSIQ_SKIP_WITHOUT_GPU();
  const auto [rows, dim, offset] = GetParam();
  constexpr int kPositions = 100, kScales = 3;  // MUSIQ's 10x10 hash grid, 3 scales
  const size_t n = size_t(rows) * dim;
  auto x = test::random_floats(n + offset, 31, -3.0f, 3.0f);
  const auto pos = test::random_floats(size_t(kPositions) * dim + offset, 32, -0.5f, 0.5f);
  const auto scl = test::random_floats(size_t(kScales) * dim + offset, 33, -0.5f, 0.5f);
  const auto spatial = test::random_ints<int32_t>(size_t(rows), 34, 0, kPositions - 1);
  const auto scale_id = test::random_ints<int32_t>(size_t(rows), 35, 0, kScales - 1);

  gpu_test::Stream stream;
  DeviceBuffer<float> d_x(x), d_pos(pos), d_scl(scl);
  DeviceBuffer<int32_t> d_spatial(spatial), d_scale_id(scale_id);
  cpu::add_embeddings(x.data() + offset, rows, dim, spatial.data(), scale_id.data(),
                      pos.data() + offset, scl.data() + offset);
  cuda::add_embeddings(d_x.get() + offset, rows, dim, d_spatial.get(), d_scale_id.get(),
                       d_pos.get() + offset, d_scl.get() + offset, stream.get());
  stream.sync();
  EXPECT_TRUE(test::all_equal(d_x.download(), x));
  EXPECT_TRUE(d_x.guard_intact()) << "wrote past the end of x";
}

INSTANTIATE_TEST_SUITE_P(Shapes, AddEmbeddingsGpuTest,
                         ::testing::Values(EmbeddingsCase{1, 384, 0}, EmbeddingsCase{33, 384, 0},
                                           EmbeddingsCase{961, 384, 0},
                                           EmbeddingsCase{12001, 384, 0},
                                           EmbeddingsCase{33, 384, 1}, EmbeddingsCase{7, 3, 0},
                                           EmbeddingsCase{33, 31, 0}),
                         [](const auto& info) {
                           const EmbeddingsCase& c = info.param;
                           return test::name("rows", c.rows, "_dim", c.dim,
                                                 c.offset ? "_unaligned" : "");
                         });

// ---- add_relu ---------------------------------------------------------------------------

struct AddReluCase {
  int64_t count;
  int offset;
};

class AddReluGpuTest : public ::testing::TestWithParam<AddReluCase> {};

TEST_P(AddReluGpuTest, MatchesCpuBitForBit) {
  MUSIQ_SKIP_WITHOUT_GPU();
  const auto [count, offset] = GetParam();
  auto x = test::random_floats(size_t(count + offset), 41, -2.0f, 2.0f);
  const auto res = test::random_floats(size_t(count + offset), 42, -2.0f, 2.0f);
  gpu_test::Stream stream;
  DeviceBuffer<float> d_x(x), d_res(res);
  cpu::add_relu(x.data() + offset, res.data() + offset, count);
  cuda::add_relu(d_x.get() + offset, d_res.get() + offset, count, stream.get());
  stream.sync();
  EXPECT_TRUE(test::all_equal(d_x.download(), x));
  EXPECT_TRUE(d_x.guard_intact()) << "wrote past the end of x";
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, AddReluGpuTest,
    ::testing::Values(AddReluCase{1, 0}, AddReluCase{5, 0}, AddReluCase{33, 0},
                      AddReluCase{64 * 8 * 8 * 256, 0},   // one bottleneck output, 64 tokens
                      AddReluCase{961 * 8 * 8 * 256, 0},  // 961 tokens
                      AddReluCase{12001 * 384 + 3, 0}, AddReluCase{33, 1},
                      AddReluCase{961 * 384, 2}),
    [](const auto& info) {
      return test::name("n", info.param.count, info.param.offset ? "_unaligned" : "");
    });

// count > 2^31: int64 offsets (opt-in: MUSIQ_GPU_LARGE_TESTS=1; ~26 GB host, ~17 GB device).
TEST(AddReluGpuLarge, CountPast2To31) {
  MUSIQ_SKIP_WITHOUT_GPU();
  if (!gpu_test::large_tests_enabled()) GTEST_SKIP() << "set MUSIQ_GPU_LARGE_TESTS=1 to run";
  const int64_t count = (int64_t{1} << 31) + 37;
  size_t free_bytes = 0, total_bytes = 0;
  CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
  if (free_bytes < 2 * size_t(count) * sizeof(float) + (size_t{1} << 30))
    GTEST_SKIP() << "needs " << ((2 * size_t(count) * sizeof(float)) >> 30)
                 << " GiB of device memory";
  std::vector<float> x(static_cast<size_t>(count)), res(static_cast<size_t>(count));
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < count; ++i) {  // cheap hash patterns, both signs, never all zero
    const uint64_t h = (uint64_t(i) * 0x9E3779B97F4A7C15ull) >> 33;
    x[size_t(i)] = float(h % 2003) / 1000.0f - 1.0f;
    res[size_t(i)] = float((h >> 11) % 1999) / 1000.0f - 1.0f;
  }
  gpu_test::Stream stream;
  DeviceBuffer<float> d_x(x), d_res(res);
  cpu::add_relu(x.data(), res.data(), count);
  res = std::vector<float>();
  cuda::add_relu(d_x.get(), d_res.get(), count, stream.get());
  stream.sync();
  EXPECT_TRUE(test::all_equal(d_x.download(), x));
  EXPECT_TRUE(d_x.guard_intact());
}

}  // namespace
}  // namespace musiq
