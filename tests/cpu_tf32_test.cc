// tf32 on the CPU ops, the GPU's twins (docs/precision.md): the rounding rule against an
// independent one, and each op's products computed on inputs rounded to tf32, as the fp32
// kernels compute them on inputs rounded beforehand.
#include <bit>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "base/precision.h"
#include "cpu/gemm.h"
#include "cpu/ops.h"
#include "tests/test_util.h"

namespace musiq {
namespace {

using test::random_floats;

// The nearest tf32 by another route: the two tf32 neighbours of x compared in double, the
// even one on a tie.
float nearest_tf32(float x) {
  const uint32_t bits = std::bit_cast<uint32_t>(x);
  const float below = std::bit_cast<float>(bits & ~0x1fffu);  // toward zero
  const float above = std::bit_cast<float>((bits & ~0x1fffu) + 0x2000u);
  const double to_below = std::fabs(double(x) - below), to_above = std::fabs(double(above) - x);
  if (to_below != to_above) return to_below < to_above ? below : above;
  return (std::bit_cast<uint32_t>(below) >> 13) % 2 == 0 ? below : above;
}

TEST(RoundToTf32, NearestTiesToEven) {
  EXPECT_EQ(round_to_tf32(1.0f + 0x1p-11f), 1.0f);                       // tie: even below
  EXPECT_EQ(round_to_tf32(1.0f + 3 * 0x1p-11f), 1.0f + 0x1p-9f);         // tie: even above
  EXPECT_EQ(round_to_tf32(1.0f + 0x1p-11f + 0x1p-20f), 1.0f + 0x1p-10f);  // past the tie
  EXPECT_EQ(round_to_tf32(FLT_MAX), std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(round_to_tf32(std::bit_cast<float>(0x7f800001u))));
  std::mt19937 rng(32);
  for (int i = 0; i < 1000000; ++i) {
    const float x = std::bit_cast<float>(static_cast<uint32_t>(rng()));
    if (!std::isfinite(x) || std::fabs(x) > 0x1.ffcp127f) continue;
    ASSERT_EQ(std::bit_cast<uint32_t>(round_to_tf32(x)), std::bit_cast<uint32_t>(nearest_tf32(x)))
        << "x = " << x;
  }
}

std::vector<float> to_tf32(std::vector<float> v) {
  for (float& x : v) x = round_to_tf32(x);
  return v;
}

// linear under tf32 is the fp32 kernel on the rounded input, bit for bit; and the rounding
// is applied (it differs from fp32 on the unrounded input).
TEST(Tf32Linear, IsFp32OnRoundedInput) {
  const int64_t m = 37;
  const int k = 300, n = 48;
  const auto a = random_floats(size_t(m) * k, 7), b = to_tf32(random_floats(size_t(k) * n, 8));
  const auto bias = random_floats(size_t(n), 9);
  std::vector<float> packed(size_t(cpu::packed_floats(k, n)));
  cpu::pack_columns(b.data(), k, n, n, packed.data());
  std::vector<float> tf32(size_t(m) * n), want(tf32.size()), fp32(tf32.size());
  cpu::linear_packed(a.data(), m, k, packed.data(), n, bias.data(), Epilogue::kBiasGelu,
                     tf32.data(), Precision::kTf32);
  cpu::linear_packed(to_tf32(a).data(), m, k, packed.data(), n, bias.data(),
                     Epilogue::kBiasGelu, want.data());
  cpu::linear_packed(a.data(), m, k, packed.data(), n, bias.data(), Epilogue::kBiasGelu,
                     fp32.data());
  EXPECT_EQ(tf32, want);
  EXPECT_NE(tf32, fp32);
}

// A convolution under tf32 is the fp32 one on the rounded input.
TEST(Tf32Conv, IsFp32OnRoundedInput) {
  const Conv2dShape s{.batch = 2,
                      .height = 9,
                      .width = 7,
                      .in_channels = 3,
                      .kernel = 3,
                      .stride = 2,
                      .pad_top = 1,
                      .pad_left = 1,
                      .out_channels = 16,
                      .out_height = 5,
                      .out_width = 4};
  const auto in = random_floats(size_t(s.batch) * s.height * s.width * s.in_channels, 10);
  const int window = static_cast<int>(s.window());
  const auto kernel = to_tf32(random_floats(size_t(window) * s.out_channels, 11));
  std::vector<float> packed(size_t(cpu::packed_floats(window, s.out_channels)));
  cpu::pack_columns(kernel.data(), window, s.out_channels, s.out_channels, packed.data());
  std::vector<float> columns(size_t(s.positions() * s.window()));
  std::vector<float> tf32(size_t(s.positions()) * s.out_channels), want(tf32.size());
  cpu::conv2d_packed(in.data(), s, packed.data(), columns.data(), tf32.data(), Precision::kTf32);
  cpu::conv2d_packed(to_tf32(in).data(), s, packed.data(), columns.data(), want.data());
  EXPECT_EQ(tf32, want);
}

}  // namespace
}  // namespace musiq
