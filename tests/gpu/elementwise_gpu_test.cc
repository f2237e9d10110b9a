// cuda::add_embeddings, cuda::add_relu, cuda::add_bias and cuda::gelu_bias against the CPU.
// add_embeddings, add_relu and add_bias are the CPU's float operations one for one: compared
// bit for bit. gelu_bias is the CPU's x / (1 + exp(-2u)) term by term; it differs in exp
// (CUDA's expf <= 2 ulp, the CPU's exp_approx <= 1.5 ulp) and in u, which the CPU's AVX
// clones round with FMAs. Relative difference: (1 + 0.5) ulp for the division and the sum
// per side, 3.5 ulp for the two exps, and up to 5 ulp of u's relative rounding (2.5 per side)
// times |2u| through exp: 2^-23 (8 + 5 |2u|) relative, tested on [-10, -3], where results
// are tiny and only a relative bound says anything (the former 0.5 x (1 + tanhf(u)) form
// is off by 205 ulp at x = -3 and by 10-100 % below -5). On the whole of [-7, 7] the bound
// is 1e-6 abs + 1e-6 rel: any indexing bug (a wrong bias column) is of order 1.
//
// The bias epilogues have no op of their own in cpu/ops.h: they live inside cpu::linear. The
// reference is therefore cpu::linear itself with b = the identity matrix (x @ I == x exactly:
// every product is x * 1 or x * 0 and every sum adds exact zeros), so the tests check the
// CPU's own gelu_tanh and its own bias order rather than a copy of them.
#include <cmath>
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

// ---- bias epilogues (against cpu::linear with an identity matrix) -----------------------

struct BiasCase {
  int64_t rows;
  int cols;
  bool has_bias;
  int offset;  // shifts x: 1 forces the scalar path
};

std::vector<float> identity(int n) {
  std::vector<float> eye(size_t(n) * n, 0.0f);
  for (int i = 0; i < n; ++i) eye[size_t(i) * n + i] = 1.0f;
  return eye;
}

// cpu::linear(x @ I, bias, epilogue): the CPU's epilogue applied to x itself.
std::vector<float> cpu_epilogue(const std::vector<float>& x, int64_t rows, int cols,
                                const float* bias, Epilogue epilogue) {
  std::vector<float> out(size_t(rows) * cols, 0.0f);
  cpu::linear(x.data(), rows, cols, identity(cols).data(), cols, bias, epilogue, out.data());
  return out;
}

class BiasGpuTest : public ::testing::TestWithParam<BiasCase> {};

TEST_P(BiasGpuTest, AddBiasMatchesCpuLinearBitForBit) {
  MUSIQ_SKIP_WITHOUT_GPU();
  const BiasCase c = GetParam();
  const size_t n = size_t(c.rows) * c.cols;
  const auto x = test::random_floats(n, 51, -3.0f, 3.0f);
  const auto bias = test::random_floats(size_t(c.cols), 52, -1.0f, 1.0f);
  const float* bias_ptr = c.has_bias ? bias.data() : nullptr;
  const auto want = cpu_epilogue(x, c.rows, c.cols, bias_ptr, Epilogue::kBias);

  std::vector<float> padded(size_t(c.offset), 7.0f);
  padded.insert(padded.end(), x.begin(), x.end());
  gpu_test::Stream stream;
  DeviceBuffer<float> d_x(padded), d_bias(bias);
  cuda::add_bias(d_x.get() + c.offset, c.rows, c.cols, c.has_bias ? d_bias.get() : nullptr,
                 stream.get());
  stream.sync();
  const auto all = d_x.download();
  EXPECT_TRUE(test::all_equal(std::vector<float>(all.begin() + c.offset, all.end()), want));
  EXPECT_TRUE(d_x.guard_intact()) << "wrote past the end of x";
}

TEST_P(BiasGpuTest, GeluBiasMatchesCpuLinear) {
  MUSIQ_SKIP_WITHOUT_GPU();
  constexpr double kAbsTol = 1e-6, kRelTol = 1e-6;
  const BiasCase c = GetParam();
  const size_t n = size_t(c.rows) * c.cols;
  const auto x = test::random_floats(n, 53, -6.0f, 6.0f);
  const auto bias = test::random_floats(size_t(c.cols), 54, -1.0f, 1.0f);
  const float* bias_ptr = c.has_bias ? bias.data() : nullptr;
  const auto want = cpu_epilogue(x, c.rows, c.cols, bias_ptr, Epilogue::kBiasGelu);

  std::vector<float> padded(size_t(c.offset), 7.0f);
  padded.insert(padded.end(), x.begin(), x.end());
  gpu_test::Stream stream;
  DeviceBuffer<float> d_x(padded), d_bias(bias);
  cuda::gelu_bias(d_x.get() + c.offset, c.rows, c.cols, c.has_bias ? d_bias.get() : nullptr,
                  stream.get());
  stream.sync();
  const auto all = d_x.download();
  EXPECT_TRUE(test::all_close(std::vector<float>(all.begin() + c.offset, all.end()), want,
                                  kAbsTol, kRelTol));
  EXPECT_TRUE(d_x.guard_intact()) << "wrote past the end of x";
}

// The negative tail, without a bias (the input is x itself): per element, 2^-23 (8 + 5 |2u|)
// relative, |2u| from 1.6 at x = -3 to 87 at x = -10 (relative bounds 5e-6 to 5.3e-5).
TEST(GeluGpuTest, NegativeTailWithinRelativeBound) {
  MUSIQ_SKIP_WITHOUT_GPU();
  constexpr int64_t kRows = 961;
  constexpr int kCols = 1152;  // the MLP's hidden layer at 1024x768
  const auto x = test::random_floats(size_t(kRows) * kCols, 55, -10.0f, -3.0f);
  const auto want = cpu_epilogue(x, kRows, kCols, nullptr, Epilogue::kBiasGelu);
  gpu_test::Stream stream;
  DeviceBuffer<float> d_x(x);
  cuda::gelu_bias(d_x.get(), kRows, kCols, nullptr, stream.get());
  stream.sync();
  const auto bound = [&](size_t i, double w) {
    const double xi = x[i];
    const double two_u = 2 * std::sqrt(2 / M_PI) * (xi + 0.044715 * xi * xi * xi);
    return std::ldexp(8 + 5 * std::fabs(two_u), -23) * w;
  };
  EXPECT_TRUE(test::all_within(d_x.download().data(), want.data(), want.size(), bound,
                                   "2^-23 (8 + 5 |2u|) relative"));
  EXPECT_TRUE(d_x.guard_intact()) << "wrote past the end of x";
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, BiasGpuTest,
    ::testing::Values(BiasCase{1, 384, true, 0}, BiasCase{33, 384, true, 0},
                      BiasCase{961, 1152, true, 0},  // the MLP's hidden layer
                      BiasCase{12001, 384, true, 0}, BiasCase{33, 384, false, 0},
                      BiasCase{33, 384, true, 1}, BiasCase{7, 3, true, 0},
                      BiasCase{33, 31, true, 0}),
    [](const auto& info) {
      const BiasCase& c = info.param;
      return test::name("rows", c.rows, "_cols", c.cols, c.has_bias ? "" : "_nobias",
                            c.offset ? "_unaligned" : "");
    });

}  // namespace
}  // namespace musiq
