// bf16 on the CPU (docs/precision.md): the rounding rule, and each bf16 product against
// double precision on the same bfloat16 inputs, on the plain path and on each bf16 kernel
// the CPU runs (cpu/bf16_gemm.h: AMX tiles, AVX512_BF16). Bounds: a float32 sum of k products is
// within k * 2^-24 of sum |products| (Higham), so 2^-16 * sum |products| leaves room at every k
// here.
#include <algorithm>
#include <bit>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <random>
#include <vector>

#include "base/error.h"
#include "base/precision.h"
#include "cpu/bf16_gemm.h"
#include "cpu/gemm.h"
#include "cpu/ops.h"
#include "cpu/vector_math.h"
#include "tests/test_util.h"

namespace musiq {
namespace {

using test::random_floats;

// The nearest bfloat16 by another route: the two bfloat16 neighbours of x compared in
// double, the even one on a tie.
float nearest_bf16(float x) {
  const uint32_t bits = std::bit_cast<uint32_t>(x);
  const float below = std::bit_cast<float>(bits & 0xffff0000u);  // toward zero
  const float above = std::bit_cast<float>((bits & 0xffff0000u) + 0x10000u);
  const double to_below = std::fabs(double(x) - below), to_above = std::fabs(double(above) - x);
  if (to_below != to_above) return to_below < to_above ? below : above;
  return (std::bit_cast<uint32_t>(below) >> 16) % 2 == 0 ? below : above;
}

TEST(RoundToBf16, NearestTiesToEven) {
  EXPECT_EQ(round_to_bf16(1.0f + 0x1p-8f), 1.0f);                       // tie: even below
  EXPECT_EQ(round_to_bf16(1.0f + 3 * 0x1p-8f), 1.0f + 0x1p-6f);         // tie: even above
  EXPECT_EQ(round_to_bf16(1.0f + 0x1p-8f + 0x1p-20f), 1.0f + 0x1p-7f);  // past the tie
  EXPECT_EQ(round_to_bf16(-3.0f), -3.0f);
  EXPECT_EQ(round_to_bf16(std::numeric_limits<float>::infinity()),
            std::numeric_limits<float>::infinity());
  EXPECT_EQ(round_to_bf16(FLT_MAX), std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(round_to_bf16(std::numeric_limits<float>::quiet_NaN())));
  // A NaN whose payload sits in the dropped bits stays a NaN.
  EXPECT_TRUE(std::isnan(round_to_bf16(std::bit_cast<float>(0x7f800001u))));
  std::mt19937 rng(25);
  for (int i = 0; i < 1000000; ++i) {
    const float x = std::bit_cast<float>(static_cast<uint32_t>(rng()));
    if (!std::isfinite(x) || std::fabs(x) > 0x1.fep127f) continue;
    ASSERT_EQ(std::bit_cast<uint32_t>(round_to_bf16(x)), std::bit_cast<uint32_t>(nearest_bf16(x)))
        << "x = " << x;
  }
}

using cpu::bf16::Kernel;

// f(kernel) with each kernel this CPU runs made the current one (the plain path too when
// `with_plain`), the kernel chosen at start restored after.
void for_each_kernel(bool with_plain, const std::function<void(Kernel)>& f) {
  const Kernel chosen = cpu::bf16::kernel();
  for (const Kernel k : {Kernel::kPlain, Kernel::kAvx512Bf16, Kernel::kAmx}) {
    if (k == Kernel::kPlain && !with_plain) continue;
    try {
      cpu::bf16::set_kernel(k);
    } catch (const Error&) {
      continue;  // not on this CPU
    }
    SCOPED_TRACE(cpu::bf16::kernel_name(k));
    f(k);
  }
  cpu::bf16::set_kernel(chosen);
}

// b [k, n] as the kernels' tiles; packing needs a CPU with a bf16 kernel, as they do.
std::vector<uint16_t> packed_tiles(const std::vector<float>& b, int k, int n) {
  std::vector<uint16_t> tiles(size_t(cpu::bf16::packed_count(k, n)));
  cpu::bf16::pack(b.data(), k, n, n, 1, tiles.data());
  return tiles;
}

std::vector<float> rounded(std::vector<float> v) {
  for (float& x : v) x = round_to_bf16(x);
  return v;
}

// out = start + a @ b in double with its error scale sum |products|; a and b as given.
struct DoubleGemm {
  std::vector<double> out, scale;
};
DoubleGemm double_gemm(const std::vector<float>& a, const std::vector<float>& b, int64_t m, int k,
                       int n, const std::vector<float>& start) {
  DoubleGemm r{std::vector<double>(size_t(m) * n), std::vector<double>(size_t(m) * n)};
  for (int64_t i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) {
      double sum = start[i * n + j], scale = std::fabs(start[i * n + j]);
      for (int p = 0; p < k; ++p) {
        const double product = double(a[i * k + p]) * b[int64_t{p} * n + j];
        sum += product;
        scale += std::fabs(product);
      }
      r.out[i * n + j] = sum;
      r.scale[i * n + j] = scale;
    }
  return r;
}

struct Shape {
  int64_t m;
  int k, n;
};

// Rows around the 6-row and 32-row tiles, k around the 32-value tile rows and past the
// 512-value k-blocks (to the embedding's long sums), columns around the 16-column panels
// and 32-column panel pairs.
const Shape kShapes[] = {{1, 1, 1},       {5, 31, 15},     {32, 32, 16},   {33, 33, 17},
                         {31, 147, 64},   {70, 384, 33},   {45, 1000, 100}, {64, 2048, 48},
                         {150, 2100, 33}, {100, 4500, 50}};

// linear (bias + residual) on bfloat16 inputs: the plain path, and each bf16 kernel.
TEST(Bf16Linear, MatchesDoubleOnRoundedInputs) {
  for (const auto [m, k, n] : kShapes) {
    const auto a = random_floats(size_t(m) * k, 1, -2.0f, 2.0f);
    const auto b = random_floats(size_t(k) * n, 2);
    const auto bias = random_floats(size_t(n), 3);
    const auto residual = random_floats(size_t(m) * n, 4);
    std::vector<float> start = residual;
    for (int64_t i = 0; i < m; ++i)
      for (int j = 0; j < n; ++j) start[i * n + j] += bias[j];
    const DoubleGemm want = double_gemm(rounded(a), rounded(b), m, k, n, start);
    std::vector<float> want_f(want.out.begin(), want.out.end());
    auto bound = [&](size_t i, double) { return 0x1p-16 * want.scale[i]; };

    const std::vector<float> b16 = rounded(b);
    std::vector<float> packed(size_t(cpu::packed_floats(k, n)));
    cpu::pack_columns(b16.data(), k, n, n, packed.data());
    std::vector<float> plain = residual;
    cpu::linear_packed(a.data(), m, k, packed.data(), n, bias.data(), Epilogue::kBiasResidual,
                       plain.data(), Precision::kBf16);
    EXPECT_TRUE(
        test::all_within(plain.data(), want_f.data(), plain.size(), bound, "2^-16 sum|products|"))
        << "plain, m " << m << " k " << k << " n " << n;
    for_each_kernel(false, [&](Kernel) {
      const std::vector<uint16_t> tiles = packed_tiles(b, k, n);
      std::vector<float> tiled = residual;
      cpu::linear_bf16(a.data(), m, k, tiles.data(), n, bias.data(), Epilogue::kBiasResidual,
                       tiled.data());
      EXPECT_TRUE(
          test::all_within(tiled.data(), want_f.data(), tiled.size(), bound, "2^-16 sum|products|"))
          << "m " << m << " k " << k << " n " << n;
    });
  }
}

// The bf16 rounding is applied: the same call in fp32 differs by far more than the bound.
TEST(Bf16Linear, DiffersFromFp32) {
  const int64_t m = 8;
  const int k = 384, n = 32;
  const auto a = random_floats(size_t(m) * k, 5), b = random_floats(size_t(k) * n, 6);
  std::vector<float> packed(size_t(cpu::packed_floats(k, n)));
  cpu::pack_columns(b.data(), k, n, n, packed.data());
  std::vector<float> fp32(size_t(m) * n), bf16(fp32.size());
  cpu::linear_packed(a.data(), m, k, packed.data(), n, nullptr, Epilogue::kBias, fp32.data());
  cpu::linear_packed(a.data(), m, k, packed.data(), n, nullptr, Epilogue::kBias, bf16.data(),
                     Precision::kBf16);
  double most = 0;
  for (size_t i = 0; i < fp32.size(); ++i)
    most = std::max(most, double(std::fabs(fp32[i] - bf16[i])));
  EXPECT_GT(most, 1e-3);
}

// GELU after the sums, on each bf16 kernel, as the plain path applies it.
TEST(Bf16Linear, GeluAsPlain) {
  const int64_t m = 40;
  const int k = 384, n = 1152;
  const auto a = random_floats(size_t(m) * k, 7), b = rounded(random_floats(size_t(k) * n, 8));
  const auto bias = random_floats(size_t(n), 9);
  std::vector<float> packed(size_t(cpu::packed_floats(k, n)));
  cpu::pack_columns(b.data(), k, n, n, packed.data());
  std::vector<float> plain(size_t(m) * n);
  cpu::linear_packed(a.data(), m, k, packed.data(), n, bias.data(), Epilogue::kBiasGelu,
                     plain.data(), Precision::kBf16);
  for_each_kernel(false, [&](Kernel) {
    const std::vector<uint16_t> tiles = packed_tiles(b, k, n);
    std::vector<float> tiled(plain.size());
    cpu::linear_bf16(a.data(), m, k, tiles.data(), n, bias.data(), Epilogue::kBiasGelu,
                     tiled.data());
    // Sums of 384 products of magnitude up to 1: 2^-16 * 384 is 6e-3 at most; GELU's slope
    // is at most 1.13.
    EXPECT_TRUE(test::all_close(tiled, plain, 1e-2, 0));
  });
}

// The stem's convolutions on each bf16 kernel against the plain path, within the bound of
// their sums (sum |products| from the same convolution of |input| and |kernel|).
TEST(Bf16Conv, MatchesPlain) {
  const Conv2dShape root{.batch = 2,
                         .height = 32,
                         .width = 32,
                         .in_channels = 3,
                         .kernel = 7,
                         .stride = 2,
                         .pad_top = 2,
                         .pad_left = 2,
                         .out_channels = 64,
                         .out_height = 16,
                         .out_width = 16};
  const Conv2dShape conv2{.batch = 2,
                          .height = 8,
                          .width = 8,
                          .in_channels = 64,
                          .kernel = 3,
                          .stride = 1,
                          .pad_top = 1,
                          .pad_left = 1,
                          .out_channels = 64,
                          .out_height = 8,
                          .out_width = 8};
  const Conv2dShape proj{.batch = 2,
                         .height = 8,
                         .width = 8,
                         .in_channels = 64,
                         .out_channels = 256,
                         .out_height = 8,
                         .out_width = 8};
  // Positions and a window that are not whole tiles (15 and 45), asymmetric padding.
  const Conv2dShape odd{.batch = 1,
                        .height = 5,
                        .width = 7,
                        .in_channels = 5,
                        .kernel = 3,
                        .stride = 2,
                        .pad_top = 1,
                        .pad_left = 0,
                        .out_channels = 20,
                        .out_height = 3,
                        .out_width = 5};
  for (const Conv2dShape& s : {root, conv2, proj, odd}) {
    const int window = static_cast<int>(s.window());
    const auto in = random_floats(size_t(s.batch) * s.height * s.width * s.in_channels, 10);
    const auto kernel = rounded(random_floats(size_t(window) * s.out_channels, 11));
    std::vector<float> packed(size_t(cpu::packed_floats(window, s.out_channels)));
    cpu::pack_columns(kernel.data(), window, s.out_channels, s.out_channels, packed.data());
    std::vector<float> columns(size_t(s.positions()) * window);
    std::vector<float> plain(size_t(s.positions()) * s.out_channels), scale(plain.size());
    cpu::conv2d_packed(in.data(), s, packed.data(), columns.data(), plain.data(), Precision::kBf16);
    std::vector<float> abs_in = in, abs_packed = packed;
    for (float& x : abs_in) x = std::fabs(x);
    for (float& x : abs_packed) x = std::fabs(x);
    cpu::conv2d_packed(abs_in.data(), s, abs_packed.data(), columns.data(), scale.data());
    for_each_kernel(false, [&](Kernel) {
      const std::vector<uint16_t> tiles = packed_tiles(kernel, window, s.out_channels);
      std::vector<float> tiled(plain.size());
      cpu::conv2d_bf16(in.data(), s, tiles.data(), columns.data(), tiled.data());
      EXPECT_TRUE(test::all_within(
          tiled.data(), plain.data(), tiled.size(),
          [&](size_t i, double) { return 0x1p-15 * scale[i]; }, "2^-15 sum|products|"))
          << "kernel " << s.kernel << " cin " << s.in_channels;
    });
  }
}

// Attention under bf16 against its definition, on inputs whose logits every summation
// order computes exactly (multiples of 2^-3 up to 1 in q, k, v: the products are exact and
// so are their sums), so that p = exp_approx(logit - max) is the engine's own and rounds
// the same way: p rounded, p v divided by the float32 sum of the unrounded p. One key block
// (cpu/attention.cc: up to 1024 keys), so that the max is the row's.
TEST(Bf16Attention, MatchesDefinition) {
  const int heads = 2, hd = 64, hidden = heads * hd;
  for_each_kernel(true, [&](Kernel) {
    for (const int64_t len : {1, 7, 300, 1000}) {
      std::vector<float> qkv;
      for (const int i : test::random_ints<int>(size_t(len) * 3 * hidden, 12, -8, 8))
        qkv.push_back(i * 0.125f);
      const int64_t starts[] = {0, len};
      std::vector<float> out(size_t(len) * hidden), want(out.size());
      cpu::attention(qkv.data(), starts, 1, heads, hd, Queries::kAll, out.data(), Precision::kBf16);
      const float scale = 1.0f / std::sqrt(float(hd));
      for (int h = 0; h < heads; ++h)
        for (int64_t i = 0; i < len; ++i) {
          std::vector<float> logits(static_cast<size_t>(len));
          for (int64_t j = 0; j < len; ++j) {
            double dot = 0;
            for (int d = 0; d < hd; ++d)
              dot += double(qkv[i * 3 * hidden + h * hd + d] * scale) *
                     qkv[j * 3 * hidden + hidden + h * hd + d];
            logits[j] = static_cast<float>(dot);  // exact
          }
          const float max = *std::max_element(logits.begin(), logits.end());
          double sum = 0;
          std::vector<double> o(hd);
          for (int64_t j = 0; j < len; ++j) {
            const float p = cpu::exp_approx(logits[j] - max);
            sum += p;
            for (int d = 0; d < hd; ++d)
              o[d] += double(round_to_bf16(p)) * qkv[j * 3 * hidden + 2 * hidden + h * hd + d];
          }
          for (int d = 0; d < hd; ++d)
            want[i * hidden + h * hd + d] = static_cast<float>(o[d] / sum);
        }
      EXPECT_TRUE(test::all_close(out, want, 2e-6, 2e-6)) << "len " << len;
    }
  });
}

// q, k and v are rounded inside: inputs rounded beforehand give the same bits.
TEST(Bf16Attention, RoundsQueriesKeysAndValues) {
  const int heads = 6, hd = 64, hidden = heads * hd;
  for_each_kernel(true, [&](Kernel) {
    for (const Queries queries : {Queries::kAll, Queries::kFirst}) {
      const int64_t len = 200, starts[] = {0, len};
      const auto qkv = random_floats(size_t(len) * 3 * hidden, 13, -2.0f, 2.0f);
      const int64_t rows = queries == Queries::kAll ? len : 1;
      std::vector<float> out(size_t(rows) * hidden), from_rounded(out.size()), fp32(out.size());
      cpu::attention(qkv.data(), starts, 1, heads, hd, queries, out.data(), Precision::kBf16);
      cpu::attention(rounded(qkv).data(), starts, 1, heads, hd, queries, from_rounded.data(),
                     Precision::kBf16);
      cpu::attention(qkv.data(), starts, 1, heads, hd, queries, fp32.data());
      EXPECT_TRUE(test::all_equal(out, from_rounded));
      EXPECT_FALSE(test::all_close(out, fp32, 1e-5, 1e-4));
    }
  });
}

}  // namespace
}  // namespace musiq
