// cuda::linear (one cuBLASLt matmul, epilogue fused) against the CPU at fp32, within
// gpu_test::gemm_abs_tol and kGemmRelTol (gpu_test_util.h): both sides are fp32 GEMMs that
// differ in summation order. With TF32 on (10-bit mantissa) these tests would fail: that is
// intended. The other precisions: gemm_precision_gpu_test.cc; conv2d: conv_gpu_test.cc.
#include <cmath>
#include <cstdint>
#include <vector>

#include "cpu/ops.h"
#include "kernels/ops.cuh"
#include "tests/gpu/gpu_test_util.h"

namespace musiq {
namespace {

using gpu_test::DeviceBuffer;
using gpu_test::Gemm;

double abs_tol_for(int64_t k) { return gpu_test::gemm_abs_tol(k); }
constexpr double kRelTol = gpu_test::kGemmRelTol;

struct LinearCase {
  int64_t m;
  int k, n;
  Epilogue epilogue;
  bool bias;
};

class LinearGpuTest : public ::testing::TestWithParam<LinearCase> {};

TEST_P(LinearGpuTest, MatchesCpu) {
  MUSIQ_SKIP_WITHOUT_GPU();
  const LinearCase c = GetParam();
  const auto a = test::random_floats(size_t(c.m) * c.k, 41);
  const auto b = test::random_floats(size_t(c.k) * c.n, 42);
  const auto bias = test::random_floats(size_t(c.n), 43);
  // The residual (kBiasResidual) or garbage the op must overwrite (the others).
  auto want = test::random_floats(size_t(c.m) * c.n, 44);
  DeviceBuffer<float> d_out(want);
  const float* bias_ptr = c.bias ? bias.data() : nullptr;
  cpu::linear(a.data(), c.m, c.k, b.data(), c.n, bias_ptr, c.epilogue, want.data());

  gpu_test::Stream stream;
  Gemm gemm;
  DeviceBuffer<float> d_a(a), d_b(b), d_bias(bias);
  cuda::linear(d_a.get(), c.m, c.k, d_b.get(), c.n, c.bias ? d_bias.get() : nullptr, c.epilogue,
               d_out.get(), gemm.get(), stream.get());
  stream.sync();
  EXPECT_TRUE(test::all_close(d_out.download(), want, abs_tol_for(c.k), kRelTol));
  EXPECT_TRUE(d_out.guard_intact());
}

using E = Epilogue;
INSTANTIATE_TEST_SUITE_P(
    Shapes, LinearGpuTest,
    ::testing::Values(
        // MUSIQ: qkv, MLP in/out, attention out, embedding (one stem chunk), head.
        LinearCase{961, 384, 1152, E::kBias, true}, LinearCase{962, 384, 1152, E::kBiasGelu, true},
        LinearCase{962, 1152, 384, E::kBiasResidual, true},
        LinearCase{962, 384, 384, E::kBiasResidual, true},
        LinearCase{512, 16384, 384, E::kBias, true}, LinearCase{1, 384, 1, E::kBias, true},
        LinearCase{1, 384, 10, E::kBias, true}, LinearCase{1, 1152, 384, E::kBiasResidual, true},
        // no bias (the stem's 1x1 convs), awkward sizes
        LinearCase{4096, 64, 256, E::kBias, false}, LinearCase{33, 31, 7, E::kBiasGelu, true},
        LinearCase{33, 31, 7, E::kBiasGelu, false}, LinearCase{7, 5, 3, E::kBiasResidual, true}),
    [](const auto& info) {
      const LinearCase& c = info.param;
      const char* e = c.epilogue == E::kBias ? "bias" : c.epilogue == E::kBiasGelu ? "gelu"
                                                                                   : "residual";
      return test::name("m", c.m, "_k", c.k, "_n", c.n, "_", e, c.bias ? "" : "_nobias");
    });

// A GemmContext given a workspace: its GEMMs allocate no device memory (cuBLASLt takes
// only the workspace it is passed; the bound of 8 MiB, as cudaMemGetInfo counts in 2 MiB
// pages, would catch a 32 MiB pool). A first context runs the same GEMMs beforehand, so that
// loading their kernels (lazy module loading allocates too) happens outside the
// measurement; the measured context makes its plans inside it (host memory only). cudaMemGetInfo
// counts every process on the device: ctest runs this suite alone (RUN_SERIAL, gpu_tests.cmake).
TEST(LinearGpuWorkspace, NoAllocationWithAGivenWorkspace) {
  MUSIQ_SKIP_WITHOUT_GPU();
  // The model's GEMMs at 961 tokens, the stem's embedding on 64 tokens and the head.
  const LinearCase cases[] = {{962, 384, 1152, Epilogue::kBias, true},
                              {962, 384, 384, Epilogue::kBiasResidual, true},
                              {962, 384, 1152, Epilogue::kBiasGelu, true},
                              {962, 1152, 384, Epilogue::kBiasResidual, true},
                              {64, 16384, 384, Epilogue::kBias, true},
                              {1, 384, 1, Epilogue::kBias, true}};
  gpu_test::Stream stream;
  DeviceBuffer<float> a(test::random_floats(962 * 16384, 45));
  DeviceBuffer<float> b(test::random_floats(16384 * 1152, 46));
  DeviceBuffer<float> bias(test::random_floats(1152, 47));
  DeviceBuffer<float> out(962 * 1152);
  auto run_all = [&](Gemm& gemm) {
    for (const LinearCase& c : cases)
      cuda::linear(a.get(), c.m, c.k, b.get(), c.n, bias.get(), c.epilogue, out.get(), gemm.get(),
                   stream.get());
    stream.sync();
  };
  Gemm warm, measured;
  run_all(warm);
  size_t free_before = 0, free_after = 0, total = 0;
  CUDA_CHECK(cudaMemGetInfo(&free_before, &total));
  run_all(measured);
  run_all(measured);
  CUDA_CHECK(cudaMemGetInfo(&free_after, &total));
  const double allocated_mib = (double(free_before) - double(free_after)) / (1 << 20);
  EXPECT_LT(allocated_mib, 8.0) << "the GEMMs allocated " << allocated_mib
                                << " MiB of device memory";
}

// ---- the fused epilogues, against cpu::linear with an identity matrix ------------------
//
// x @ I == x exactly on both sides (every product is x * 1 or x * 0 and every sum adds exact
// zeros), so these isolate the epilogue: cpu::linear's own bias order and gelu_tanh against
// cuBLASLt's BIAS and GELU_BIAS. The bias is one float addition on both: bit for bit. GELU:
// the CPU computes x / (1 + exp(-2u)), cuBLASLt documents 0.5 x (1 + tanh(u)); they agree to
// a few ulp where GELU is not near 0 (1e-6 abs + 1e-6 rel on [-7, 7]), but 1 + tanh(u)
// cancels below x of about -3, so there the bound is absolute: 0.5 |x| times the error of
// 1 + tanh(u), a few ulp of 1 (2^-23 each); |x| 2^-21 allows four. An approximate tanh
// (hardware tanh.approx, 2^-11 relative) would miss it by a factor of 500. The tail's values
// are below 2e-3 in magnitude and enter the next GEMM with these absolute errors.

struct EpilogueCase {
  int64_t rows;
  int cols;
  bool has_bias;
  int offset;  // shifts x and out: 1 leaves them 4-byte aligned only
};

std::vector<float> identity(int n) {
  std::vector<float> eye(size_t(n) * n, 0.0f);
  for (int i = 0; i < n; ++i) eye[size_t(i) * n + i] = 1.0f;
  return eye;
}

// linear(x @ I, bias, epilogue) on the CPU and the GPU, x [rows, cols] in `range`.
struct EpilogueResult {
  std::vector<float> x, want, got;
};
EpilogueResult run_epilogue(const EpilogueCase& c, Epilogue epilogue, float lo, float hi,
                            uint64_t seed) {
  const size_t n = size_t(c.rows) * c.cols;
  EpilogueResult r;
  r.x = test::random_floats(n, seed, lo, hi);
  const auto bias = test::random_floats(size_t(c.cols), seed + 1, -1.0f, 1.0f);
  const auto eye = identity(c.cols);
  const float* bias_ptr = c.has_bias ? bias.data() : nullptr;
  r.want.assign(n, 0.0f);
  cpu::linear(r.x.data(), c.rows, c.cols, eye.data(), c.cols, bias_ptr, epilogue, r.want.data());

  std::vector<float> padded(size_t(c.offset), 7.0f);
  padded.insert(padded.end(), r.x.begin(), r.x.end());
  gpu_test::Stream stream;
  Gemm gemm;
  DeviceBuffer<float> d_x(padded), d_eye(eye), d_bias(bias), d_out(padded.size());
  cuda::linear(d_x.get() + c.offset, c.rows, c.cols, d_eye.get(), c.cols,
               c.has_bias ? d_bias.get() : nullptr, epilogue, d_out.get() + c.offset, gemm.get(),
               stream.get());
  stream.sync();
  const auto all = d_out.download();
  r.got.assign(all.begin() + c.offset, all.end());
  EXPECT_TRUE(d_out.guard_intact()) << "wrote past the end of out";
  return r;
}

class EpilogueGpuTest : public ::testing::TestWithParam<EpilogueCase> {};

TEST_P(EpilogueGpuTest, BiasMatchesCpuLinearBitForBit) {
  MUSIQ_SKIP_WITHOUT_GPU();
  const EpilogueResult r = run_epilogue(GetParam(), Epilogue::kBias, -3.0f, 3.0f, 51);
  EXPECT_TRUE(test::all_equal(r.got, r.want));
}

TEST_P(EpilogueGpuTest, GeluBiasMatchesCpuLinear) {
  MUSIQ_SKIP_WITHOUT_GPU();
  const EpilogueResult r = run_epilogue(GetParam(), Epilogue::kBiasGelu, -6.0f, 6.0f, 53);
  EXPECT_TRUE(test::all_close(r.got, r.want, 1e-6, 1e-6));
}

TEST(GeluGpuTest, NegativeTailWithinAbsoluteBound) {
  MUSIQ_SKIP_WITHOUT_GPU();
  // The MLP's hidden layer at 1024x768, no bias (the input is x itself), x in [-10, -3].
  const EpilogueResult r =
      run_epilogue({961, 1152, false, 0}, Epilogue::kBiasGelu, -10.0f, -3.0f, 55);
  const auto bound = [&](size_t i, double) { return std::ldexp(std::fabs(r.x[i]), -21); };
  EXPECT_TRUE(
      test::all_within(r.got.data(), r.want.data(), r.want.size(), bound, "|x| 2^-21 absolute"));
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, EpilogueGpuTest,
    ::testing::Values(EpilogueCase{1, 384, true, 0}, EpilogueCase{33, 384, true, 0},
                      EpilogueCase{961, 1152, true, 0},  // the MLP's hidden layer
                      EpilogueCase{12001, 384, true, 0}, EpilogueCase{33, 384, false, 0},
                      EpilogueCase{33, 384, true, 1}, EpilogueCase{7, 3, true, 0},
                      EpilogueCase{33, 31, true, 0}),
    [](const auto& info) {
      const EpilogueCase& c = info.param;
      return test::name("rows", c.rows, "_cols", c.cols, c.has_bias ? "" : "_nobias",
                        c.offset ? "_unaligned" : "");
    });

}  // namespace
}  // namespace musiq
