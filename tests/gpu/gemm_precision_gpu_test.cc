// cuda::linear and cuda::conv2d at bf16 and tf32 (docs/precision.md) against their CPU twins
// at the same precision, cpu::linear_packed and cpu::conv2d_packed, on fresh random inputs.
//
// Bound: gpu_test::gemm_abs_tol and kGemmRelTol, fp32's (gpu_test_util.h). Both sides round
// the same inputs by the same rule (the GPU in round_to_bf16, im2col or the tensor cores'
// tf32 read; the CPU in its plain path), and the product of two bfloat16 (8 significant
// bits) or two tf32 values (11) is exact in float32, so both sum the same exact products in
// float32 and differ only in the order of the sums, as at fp32. A missed rounding is not
// that small: ReducedPrecisionGpuTest shows the rounding moves the result by far more.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "cpu/gemm.h"
#include "cpu/ops.h"
#include "kernels/ops.cuh"
#include "tests/gpu/gpu_test_util.h"

namespace musiq {
namespace {

using gpu_test::DeviceBuffer;
using gpu_test::gemm_abs_tol;
using gpu_test::kGemmRelTol;

const char* name_of(Precision p) { return precision_name(p).c_str(); }

// A GEMM's kernel b [k, n] as the CPU twin takes it: rounded (as CpuModel rounds its
// kernels when it loads), then packed.
std::vector<float> cpu_kernel(std::vector<float> b, int k, int n, Precision p) {
  cpu::round_product_inputs(p, b.data(), int64_t(b.size()), b.data());
  std::vector<float> packed(size_t(cpu::packed_floats(k, n)));
  cpu::pack_columns(b.data(), k, n, n, packed.data());
  return packed;
}

// The same kernel on the device as the GPU op takes it: float32, or under bf16 rounded by
// cuda::round_to_bf16 (as GpuModel rounds its kernels when it uploads them).
struct GpuKernel {
  DeviceBuffer<float> fp32;
  DeviceBuffer<__nv_bfloat16> bf16;
  GpuKernel(const std::vector<float>& b, Precision p, cudaStream_t stream) : fp32(b) {
    if (p != Precision::kBf16) return;
    bf16 = DeviceBuffer<__nv_bfloat16>(b.size());
    cuda::round_to_bf16(fp32.get(), int64_t(b.size()), bf16.get(), stream);
  }
};

struct LinearCase {
  Precision precision;
  int64_t m;
  int k, n;
  Epilogue epilogue;
  bool bias;
};

// out = linear(a, b, bias) on the GPU at c.precision; `out` holds the residual on entry.
std::vector<float> gpu_linear(const LinearCase& c, const std::vector<float>& a,
                              const std::vector<float>& b, const std::vector<float>& bias,
                              std::vector<float> out) {
  gpu_test::Stream stream;
  gpu_test::Gemm gemm;
  DeviceBuffer<float> d_a(a), d_bias(bias), d_out(out);
  const GpuKernel kernel(b, c.precision, stream.get());
  const float* bias_ptr = c.bias ? d_bias.get() : nullptr;
  DeviceBuffer<__nv_bfloat16> a_bf16(size_t(c.m) * c.k);
  if (c.precision == Precision::kBf16)
    cuda::linear_bf16(d_a.get(), c.m, c.k, kernel.bf16.get(), c.n, bias_ptr, c.epilogue,
                      d_out.get(), a_bf16.get(), gemm.get(), stream.get());
  else
    cuda::linear(d_a.get(), c.m, c.k, kernel.fp32.get(), c.n, bias_ptr, c.epilogue, d_out.get(),
                 gemm.get(), stream.get(), c.precision);
  stream.sync();
  EXPECT_TRUE(d_out.guard_intact());
  EXPECT_TRUE(a_bf16.guard_intact());
  return d_out.download();
}

class LinearPrecisionGpuTest : public ::testing::TestWithParam<LinearCase> {};

TEST_P(LinearPrecisionGpuTest, MatchesCpuTwin) {
  MUSIQ_SKIP_WITHOUT_GPU();
  const LinearCase c = GetParam();
  const auto a = test::random_floats(size_t(c.m) * c.k, 61);
  const auto b = test::random_floats(size_t(c.k) * c.n, 62);
  const auto bias = test::random_floats(size_t(c.n), 63);
  // The residual (kBiasResidual) or garbage the op must overwrite (the others).
  const auto residual = test::random_floats(size_t(c.m) * c.n, 64);
  std::vector<float> want = residual;
  const std::vector<float> packed = cpu_kernel(b, c.k, c.n, c.precision);
  cpu::linear_packed(a.data(), c.m, c.k, packed.data(), c.n, c.bias ? bias.data() : nullptr,
                     c.epilogue, want.data(), c.precision);
  EXPECT_TRUE(test::all_close(gpu_linear(c, a, b, bias, residual), want, gemm_abs_tol(c.k),
                              kGemmRelTol));
}

using E = Epilogue;
constexpr Precision kBf16 = Precision::kBf16, kTf32 = Precision::kTf32;

std::vector<LinearCase> linear_cases() {
  std::vector<LinearCase> cases;
  for (Precision p : {kBf16, kTf32})
    for (LinearCase c : {
             // MUSIQ: qkv, MLP in/out, attention out, embedding (one stem chunk), head-sized.
             LinearCase{p, 961, 384, 1152, E::kBias, true},
             LinearCase{p, 962, 384, 1152, E::kBiasGelu, true},
             LinearCase{p, 962, 1152, 384, E::kBiasResidual, true},
             LinearCase{p, 512, 16384, 384, E::kBias, true},
             LinearCase{p, 1, 384, 10, E::kBias, true},
             // no bias (the stem's 1x1 convs), awkward sizes (odd rows of bfloat16)
             LinearCase{p, 4096, 64, 256, E::kBias, false},
             LinearCase{p, 33, 31, 7, E::kBiasGelu, false},
             LinearCase{p, 7, 5, 3, E::kBiasResidual, true}})
      cases.push_back(c);
  return cases;
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, LinearPrecisionGpuTest, ::testing::ValuesIn(linear_cases()), [](const auto& info) {
      const LinearCase& c = info.param;
      const char* e = c.epilogue == E::kBias ? "bias" : c.epilogue == E::kBiasGelu ? "gelu"
                                                                                   : "residual";
      return test::name(name_of(c.precision), "_m", c.m, "_k", c.k, "_n", c.n, "_", e,
                        c.bias ? "" : "_nobias");
    });

struct ConvCase {
  Precision precision;
  Conv2dShape shape;
};

class ConvPrecisionGpuTest : public ::testing::TestWithParam<ConvCase> {};

TEST_P(ConvPrecisionGpuTest, MatchesCpuTwin) {
  MUSIQ_SKIP_WITHOUT_GPU();
  const auto [p, s] = GetParam();
  const int64_t positions = s.positions(), k = s.window();
  const auto in = test::random_floats(size_t(s.batch) * s.height * s.width * s.in_channels, 71);
  const auto kernel = test::random_floats(size_t(k) * s.out_channels, 72);
  std::vector<float> columns(size_t(positions * k)), want(size_t(positions) * s.out_channels);
  const std::vector<float> packed = cpu_kernel(kernel, int(k), s.out_channels, p);
  cpu::conv2d_packed(in.data(), s, packed.data(), columns.data(), want.data(), p);

  gpu_test::Stream stream;
  gpu_test::Gemm gemm;
  DeviceBuffer<float> d_in(in), d_out(want.size());
  const GpuKernel d_kernel(kernel, p, stream.get());
  // Under bf16 the columns are bfloat16, and a pointwise shape needs them too.
  DeviceBuffer<float> d_columns(p == kBf16 ? 0 : columns.size());
  DeviceBuffer<__nv_bfloat16> d_columns_bf16(p == kBf16 ? columns.size() : 0);
  if (p == kBf16)
    cuda::conv2d_bf16(d_in.get(), s, d_kernel.bf16.get(), d_columns_bf16.get(), d_out.get(),
                      gemm.get(), stream.get());
  else
    cuda::conv2d(d_in.get(), s, d_kernel.fp32.get(), d_columns.get(), d_out.get(), gemm.get(),
                 stream.get(), p);
  stream.sync();
  EXPECT_TRUE(test::all_close(d_out.download(), want, gemm_abs_tol(k), kGemmRelTol));
  EXPECT_TRUE(d_out.guard_intact());
  EXPECT_TRUE(p == kBf16 ? d_columns_bf16.guard_intact() : d_columns.guard_intact());
}

std::vector<ConvCase> conv_cases() {
  std::vector<ConvCase> cases;
  for (Precision p : {kBf16, kTf32})
    for (const Conv2dShape& s : {
             // {batch, height, width, in_channels, kernel, stride, pad_top, pad_left,
             //  out_channels, out_height, out_width}
             // conv_root 7x7/2 SAME 32 -> 16 (pad 2 before); conv2 3x3/1 SAME on 8x8x64;
             // conv1 and conv3/proj 1x1 (the plain-GEMM path); odd sizes, stride 2 on 3x3
             Conv2dShape{33, 32, 32, 3, 7, 2, 2, 2, 64, 16, 16},
             Conv2dShape{33, 8, 8, 64, 3, 1, 1, 1, 64, 8, 8},
             Conv2dShape{33, 8, 8, 64, 1, 1, 0, 0, 256, 8, 8},
             Conv2dShape{3, 9, 7, 5, 3, 2, 1, 1, 6, 5, 4}})
      cases.push_back({p, s});
  return cases;
}

INSTANTIATE_TEST_SUITE_P(
    StemShapes, ConvPrecisionGpuTest, ::testing::ValuesIn(conv_cases()), [](const auto& info) {
      const Conv2dShape& s = info.param.shape;
      return test::name(name_of(info.param.precision), "_n", s.batch, "_", s.height, "x",
                        s.width, "x", s.in_channels, "_k", s.kernel, "x", s.kernel, "s",
                        s.stride, "_cout", s.out_channels);
    });

// The rounding happens: the GPU at bf16 and tf32 moves a qkv-sized product of inputs
// whose low bits are set (random floats in [-1, 1]) away from its fp32 result by far more
// than the bound above allows fp32 noise. Expected, from the same product in NumPy with
// each input rounded: a largest difference of ~800 times the bound (bf16: relative
// rounding error up to 2^-9 per input) or ~120 times (tf32: 2^-12).
class ReducedPrecisionGpuTest : public ::testing::TestWithParam<Precision> {};

TEST_P(ReducedPrecisionGpuTest, DiffersFromFp32ByMoreThanFp32Noise) {
  MUSIQ_SKIP_WITHOUT_GPU();
  const LinearCase c{GetParam(), 64, 384, 384, E::kBias, true};
  LinearCase fp32 = c;
  fp32.precision = Precision::kFp32;
  const auto a = test::random_floats(size_t(c.m) * c.k, 81);
  const auto b = test::random_floats(size_t(c.k) * c.n, 82);
  const auto bias = test::random_floats(size_t(c.n), 83);
  const std::vector<float> garbage(size_t(c.m) * c.n, 7.0f);
  const std::vector<float> reduced = gpu_linear(c, a, b, bias, garbage);
  const std::vector<float> exact = gpu_linear(fp32, a, b, bias, garbage);
  double largest = 0;  // in units of the bound
  for (size_t i = 0; i < exact.size(); ++i)
    largest = std::max(largest, std::fabs(double(reduced[i]) - exact[i]) /
                                    (gemm_abs_tol(c.k) + kGemmRelTol * std::fabs(exact[i])));
  EXPECT_GT(largest, 20) << name_of(c.precision) << ": the rounding was not applied";
}

INSTANTIATE_TEST_SUITE_P(Precisions, ReducedPrecisionGpuTest, ::testing::Values(kBf16, kTf32),
                         [](const auto& info) { return std::string(name_of(info.param)); });

}  // namespace
}  // namespace musiq
