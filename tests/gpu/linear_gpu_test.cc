// cuda::linear (cuBLAS SGEMM + epilogues) and cuda::conv2d (im2col + SGEMM) against the CPU.
// Bound: (1e-5 + 1e-7 * k) abs + 1e-5 rel. Both sides are fp32 GEMMs that differ only in
// summation order (OpenBLAS vs cuBLAS, TF32 off); for inputs in [-1, 1] each rounding error
// is ~6e-8 of partial sums that grow like sqrt(k), so the expected difference is ~1e-7 * k
// at worst for the k here (31 .. 16384), while an indexing or epilogue bug gives errors of
// order 1. With TF32 on (10-bit mantissa) these tests would fail: that is intended.
#include <cstdint>
#include <vector>

#include "cpu/ops.h"
#include "kernels/ops.cuh"
#include "tests/gpu/gpu_test_util.h"

namespace musiq {
namespace {

using gpu_test::DeviceBuffer;

double abs_tol_for(int64_t k) { return 1e-5 + 1e-7 * double(k); }
constexpr double kRelTol = 1e-5;

// RAII cuBLAS handle as the engine makes it (TF32 off).
class Blas {
 public:
  Blas() : handle_(cuda::make_blas_handle()) {}
  ~Blas() { cublasDestroy(handle_); }
  Blas(const Blas&) = delete;
  Blas& operator=(const Blas&) = delete;
  cublasHandle_t get() const { return handle_; }

 private:
  cublasHandle_t handle_;
};

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
  Blas blas;
  DeviceBuffer<float> d_a(a), d_b(b), d_bias(bias);
  cuda::linear(d_a.get(), c.m, c.k, d_b.get(), c.n, c.bias ? d_bias.get() : nullptr, c.epilogue,
               d_out.get(), blas.get(), stream.get());
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

class ConvGpuTest : public ::testing::TestWithParam<Conv2dShape> {};

TEST_P(ConvGpuTest, MatchesCpu) {
  MUSIQ_SKIP_WITHOUT_GPU();
  const Conv2dShape s = GetParam();
  const int64_t positions = s.positions(), k = s.window();
  const auto in = test::random_floats(size_t(s.batch) * s.height * s.width * s.in_channels, 51);
  const auto kernel = test::random_floats(size_t(k) * s.out_channels, 52);
  std::vector<float> columns(size_t(positions * k)), want(size_t(positions) * s.out_channels);
  cpu::conv2d(in.data(), s, kernel.data(), columns.data(), want.data());

  gpu_test::Stream stream;
  Blas blas;
  DeviceBuffer<float> d_in(in), d_kernel(kernel), d_columns(columns.size()), d_out(want.size());
  cuda::conv2d(d_in.get(), s, d_kernel.get(), d_columns.get(), d_out.get(), blas.get(),
               stream.get());
  stream.sync();
  EXPECT_TRUE(test::all_close(d_out.download(), want, abs_tol_for(k), kRelTol));
  EXPECT_TRUE(d_out.guard_intact());
  EXPECT_TRUE(d_columns.guard_intact());
}

INSTANTIATE_TEST_SUITE_P(
    StemShapes, ConvGpuTest,
    ::testing::Values(
        // {batch, height, width, in_channels, kernel, stride, pad_top, pad_left,
        //  out_channels, out_height, out_width}
        // conv_root 7x7/2 SAME 32 -> 16 (pad 2 before), for 1, 33 and 512 tokens
        Conv2dShape{1, 32, 32, 3, 7, 2, 2, 2, 64, 16, 16},
        Conv2dShape{33, 32, 32, 3, 7, 2, 2, 2, 64, 16, 16},
        Conv2dShape{512, 32, 32, 3, 7, 2, 2, 2, 64, 16, 16},
        // conv2 3x3/1 SAME on 8x8x64; conv1 and conv3/proj 1x1 (the plain-GEMM path)
        Conv2dShape{33, 8, 8, 64, 3, 1, 1, 1, 64, 8, 8},
        Conv2dShape{33, 8, 8, 64, 1, 1, 0, 0, 64, 8, 8},
        Conv2dShape{33, 8, 8, 64, 1, 1, 0, 0, 256, 8, 8},
        // awkward: odd sizes, stride 2 with a 3x3 kernel
        Conv2dShape{3, 9, 7, 5, 3, 2, 1, 1, 6, 5, 4}),
    [](const auto& info) {
      const Conv2dShape& s = info.param;
      return test::name("n", s.batch, "_", s.height, "x", s.width, "x", s.in_channels, "_k",
                        s.kernel, "x", s.kernel, "s", s.stride, "_cout", s.out_channels);
    });

// cuda::set_blas_workspace: afterwards the GEMMs allocate no device memory. Had the
// workspace been set before cublasSetStream (or reset by a cublasSetStream per call),
// cuBLAS would allocate its default pool on the handle's first GEMM: 32 MiB on Hopper, so
// the bound of 8 MiB (cudaMemGetInfo counts in 2 MiB pages) tells the two apart there. A
// first handle runs the same GEMMs beforehand, so that loading their kernels (lazy module
// loading allocates too) happens outside the measurement. cudaMemGetInfo counts every
// process on the device: ctest runs this suite alone (RUN_SERIAL, gpu_tests.cmake).
TEST(LinearGpuWorkspace, NoAllocationAfterSetBlasWorkspace) {
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
  auto run_all = [&](const Blas& blas) {
    for (const LinearCase& c : cases)
      cuda::linear(a.get(), c.m, c.k, b.get(), c.n, bias.get(), c.epilogue, out.get(),
                   blas.get(), stream.get());
    stream.sync();
  };
  DeviceBuffer<unsigned char> warm_workspace(cuda::kBlasWorkspaceBytes),
      workspace(cuda::kBlasWorkspaceBytes);
  Blas warm, measured;
  cuda::set_blas_workspace(warm.get(), stream.get(), warm_workspace.get(),
                           cuda::kBlasWorkspaceBytes);
  run_all(warm);
  cuda::set_blas_workspace(measured.get(), stream.get(), workspace.get(),
                           cuda::kBlasWorkspaceBytes);
  size_t free_before = 0, free_after = 0, total = 0;
  CUDA_CHECK(cudaMemGetInfo(&free_before, &total));
  run_all(measured);
  run_all(measured);
  CUDA_CHECK(cudaMemGetInfo(&free_after, &total));
  const double allocated_mib = (double(free_before) - double(free_after)) / (1 << 20);
  EXPECT_LT(allocated_mib, 8.0) << "the GEMMs allocated " << allocated_mib
                                << " MiB of device memory";
}

}  // namespace
}  // namespace musiq
