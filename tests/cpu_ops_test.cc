// CPU op properties beyond tests/ops_test.cc's per-device check against the double-precision
// formula: max-pool padding, attention against plain float32 and packed sequences, the
// GEMM's odd shapes, the convolution's windows read in place, the vector math, patch padding
// and byte normalisation.
#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <limits>
#include <utility>

#include "cpu/gemm.h"
#include "cpu/isa.h"
#include "cpu/ops.h"
#include "cpu/vector_math.h"
#include "tests/test_util.h"

namespace musiq {
namespace {

using test::all_close;
using test::random_floats;

TEST(MaxPool, PaddingNeverWinsOnNegativeInput) {
  const int n = 2, h = 16, c = 64, out_side = 8;
  const auto in = random_floats(size_t(n) * h * h * c, 6, -5.0f, -1.0f);
  std::vector<float> out(size_t(n) * out_side * out_side * c), want(out.size());
  cpu::max_pool_3x3_s2(in.data(), n, h, h, c, out_side, out_side, out.data());
  for (int b = 0; b < n; ++b)
    for (int oy = 0; oy < out_side; ++oy)
      for (int ox = 0; ox < out_side; ++ox)
        for (int ch = 0; ch < c; ++ch) {
          float m = -std::numeric_limits<float>::infinity();
          for (int y = 2 * oy; y < std::min(2 * oy + 3, h); ++y)  // SAME: 0 before, 1 after
            for (int x = 2 * ox; x < std::min(2 * ox + 3, h); ++x)
              m = std::max(m, in[((size_t(b) * h + y) * h + x) * c + ch]);
          want[((size_t(b) * out_side + oy) * out_side + ox) * c + ch] = m;
        }
  EXPECT_TRUE(all_close(out, want, 0, 0));
}

double gelu_tanh(double x) {
  return 0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
}

struct AttentionCase {
  int64_t len, q_rows;
};

class AttentionTest : public ::testing::TestWithParam<AttentionCase> {};

// Lengths around the 256-row query block, the last block's single CLS query (q_rows 1),
// 962 rows (4 equal blocks of 241) and 1100 keys (two key blocks: the online softmax).
// Besides the bound, the flash-attention rule: the error against double precision is at
// most twice that of a plain float32 implementation (std::exp, sequential sums).
TEST_P(AttentionTest, MatchesFullSoftmax) {
  const auto [len, q_rows] = GetParam();
  const int heads = 6, hd = 64, hidden = heads * hd;
  const auto qkv = random_floats(size_t(len) * 3 * hidden, 14, -2.0f, 2.0f);
  std::vector<float> out(size_t(q_rows) * hidden), want(out.size()), plain(out.size());
  for (int h = 0; h < heads; ++h)
    for (int64_t i = 0; i < q_rows; ++i) {
      std::vector<double> s(len);
      std::vector<float> sf(len);
      double max = -1e300, sum = 0;
      float maxf = -std::numeric_limits<float>::infinity(), sumf = 0;
      for (int64_t j = 0; j < len; ++j) {
        double dot = 0;
        float dotf = 0;
        for (int d = 0; d < hd; ++d) {
          const float a = qkv[i * 3 * hidden + h * hd + d];
          const float b = qkv[j * 3 * hidden + hidden + h * hd + d];
          dot += double(a) * b;
          dotf += a / 8.0f * b;
        }
        s[j] = dot / 8.0;
        sf[j] = dotf;
        max = std::max(max, s[j]);
        maxf = std::max(maxf, sf[j]);
      }
      for (double& v : s) sum += (v = std::exp(v - max));
      for (float& v : sf) sumf += (v = std::exp(v - maxf));
      for (int d = 0; d < hd; ++d) {
        double acc = 0;
        float accf = 0;
        for (int64_t j = 0; j < len; ++j) {
          const float v = qkv[j * 3 * hidden + 2 * hidden + h * hd + d];
          acc += s[j] / sum * v;
          accf += sf[j] / sumf * v;
        }
        want[i * hidden + h * hd + d] = float(acc);
        plain[i * hidden + h * hd + d] = accf;
      }
    }
  const int64_t starts[] = {0, len};
  cpu::attention(qkv.data(), starts, 1, heads, hd,
                 q_rows == len ? Queries::kAll : Queries::kFirst, out.data());
  EXPECT_TRUE(all_close(out, want, 1e-5, 1e-4));
  double err = 0, plain_err = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    err = std::max(err, std::fabs(double(out[i]) - want[i]));
    plain_err = std::max(plain_err, std::fabs(double(plain[i]) - want[i]));
  }
  EXPECT_LE(err, 2 * plain_err + 1e-7) << "plain float32 error " << plain_err;
}

INSTANTIATE_TEST_SUITE_P(Lengths, AttentionTest,
                         ::testing::Values(AttentionCase{1, 1}, AttentionCase{33, 33},
                                           AttentionCase{300, 300}, AttentionCase{513, 1},
                                           AttentionCase{962, 962}, AttentionCase{700, 1},
                                           AttentionCase{1100, 1100}));

// Packed sequences (cu_seqlens) attend only within themselves: every sequence's output is
// bit for bit what it gets alone, for all queries and for the CLS query alone.
TEST(AttentionPacked, EachSequenceAsAlone) {
  const int heads = 6, hd = 64, hidden = heads * hd;
  const std::vector<int64_t> lens = {1, 33, 300, 962, 5};
  std::vector<int64_t> starts{0};
  for (int64_t n : lens) starts.push_back(starts.back() + n);
  const int64_t rows = starts.back();
  const auto qkv = random_floats(size_t(rows) * 3 * hidden, 15, -2.0f, 2.0f);
  for (Queries queries : {Queries::kAll, Queries::kFirst}) {
    const bool all = queries == Queries::kAll;
    std::vector<float> packed(size_t(all ? rows : int64_t(lens.size())) * hidden);
    cpu::attention(qkv.data(), starts.data(), int(lens.size()), heads, hd, queries, packed.data());
    for (size_t s = 0; s < lens.size(); ++s) {
      const std::vector<float> one_qkv(qkv.begin() + starts[s] * 3 * hidden,
                                       qkv.begin() + starts[s + 1] * 3 * hidden);
      const int64_t one_starts[] = {0, lens[s]};
      const int64_t out_rows = all ? lens[s] : 1;
      std::vector<float> alone(size_t(out_rows) * hidden);
      cpu::attention(one_qkv.data(), one_starts, 1, heads, hd, queries, alone.data());
      const auto first = packed.begin() + (all ? starts[s] : int64_t(s)) * hidden;
      EXPECT_TRUE(std::equal(alone.begin(), alone.end(), first))
          << "sequence " << s << " (len " << lens[s] << "), all queries: " << all;
    }
  }
}

// Spacing of floats at |y| (2^-149 among subnormals); errors below are in these units.
double float_ulp(double y) {
  const int e = y == 0 ? -126 : std::max(std::ilogb(float(std::fabs(y))), -126);
  return std::ldexp(1.0, e - 23);
}

// n + 1 evenly spaced floats over [lo, hi].
std::vector<float> sweep(double lo, double hi, int n) {
  std::vector<float> x(n + 1);
  for (int i = 0; i <= n; ++i) x[i] = float(lo + (hi - lo) * i / n);
  return x;
}

// The library calls these from kernels compiled per ISA (cpu/isa.h), whose AVX2 and
// AVX-512 versions contract to FMA; each test checks that code as well as the inline
// baseline.
template <cpu::Isa>
__attribute__((always_inline)) inline void exp_per_isa_kernel(const float* x, float* y, size_t n) {
  for (size_t i = 0; i < n; ++i) y[i] = cpu::exp_approx(x[i]);
}
MUSIQ_DISPATCH_BY_ISA(void, exp_per_isa, (const float* x, float* y, size_t n), (x, y, n))
template <cpu::Isa>
__attribute__((always_inline)) inline void gelu_per_isa_kernel(const float* x, float* y, size_t n) {
  for (size_t i = 0; i < n; ++i) y[i] = cpu::gelu_tanh(x[i]);
}
MUSIQ_DISPATCH_BY_ISA(void, gelu_per_isa, (const float* x, float* y, size_t n), (x, y, n))

// exp_approx against double exp at 2^23 + 1 evenly spaced points per range: softmax's
// [-88, 0], the positive side GELU uses, and the subnormal results. Measured at most
// 0.98 ulp for SSE2, 1.01 with FMA (std::exp: 0.50).
TEST(VectorMath, ExpWithinOneAndAHalfUlp) {
  for (const auto& [lo, hi] : {std::pair{-88.0, 0.0}, {0.0, 88.72}, {-104.0, -87.0}}) {
    const std::vector<float> x = sweep(lo, hi, 1 << 23);
    std::vector<float> cloned(x.size());
    exp_per_isa(x.data(), cloned.data(), x.size());
    double worst = 0, at = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      const double want = std::exp(double(x[i]));
      for (const float got : {cpu::exp_approx(x[i]), cloned[i]}) {
        const double err = std::fabs(got - want) / float_ulp(want);
        if (err > worst) {
          worst = err;
          at = x[i];
        }
      }
    }
    EXPECT_LE(worst, 1.5) << "[" << lo << ", " << hi << "] at x = " << at;
  }
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(cpu::exp_approx(0.0f), 1.0f);
  EXPECT_EQ(cpu::exp_approx(-inf), 0.0f);
  EXPECT_EQ(cpu::exp_approx(89.0f), inf);
  EXPECT_EQ(cpu::exp_approx(inf), inf);
  EXPECT_TRUE(std::isnan(cpu::exp_approx(std::numeric_limits<float>::quiet_NaN())));
}

// gelu_tanh against double precision on [-10, 12] (below about -10.07 the result is under
// 3e-38 and flushes to -0). Bound: 4 (1 + |2u|) ulp, the |2u| term being the float32
// rounding of the tanh argument u, amplified by exp (measured 3.2 (1 + |2u|) at most;
// the former std::tanh form reached 205 ulp at x = -3 and 2^24 below x = -5).
TEST(VectorMath, GeluWithinArgumentRounding) {
  const std::vector<float> x = sweep(-10.0, 12.0, 1 << 22);
  std::vector<float> cloned(x.size());
  gelu_per_isa(x.data(), cloned.data(), x.size());
  double worst = 0, at = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double u2 = 2 * std::sqrt(2 / M_PI) * (x[i] + 0.044715 * x[i] * x[i] * x[i]);
    // x (1 + tanh u) / 2 written as x / (1 + exp(-2u)): no cancellation for x < 0.
    const double want = x[i] / (1 + std::exp(-u2));
    for (const float got : {cpu::gelu_tanh(x[i]), cloned[i]}) {
      const double err = std::fabs(got - want) / float_ulp(want) / (1 + std::fabs(u2));
      if (err > worst) {
        worst = err;
        at = x[i];
      }
    }
  }
  EXPECT_LE(worst, 4.0) << "at x = " << at;
  EXPECT_EQ(cpu::gelu_tanh(0.0f), 0.0f);
  EXPECT_EQ(cpu::gelu_tanh(-20.0f), 0.0f);
  EXPECT_EQ(cpu::gelu_tanh(20.0f), 20.0f);
}

TEST(ExtractPatches, SamePaddingSplitsTheRemainder) {
  // 40x70 image, patch 32: 2x3 patches, padding 24 rows (12 before) and 26 cols (13 before).
  const int h = 40, w = 70;
  const auto image = random_floats(size_t(h) * w * 3, 19);
  std::vector<float> out(size_t(6) * 32 * 32 * 3);
  cpu::extract_patches(image.data(), h, w, 32, 2, 3, 12, 13, out.data());
  for (int p = 0; p < 6; ++p)
    for (int dy = 0; dy < 32; ++dy)
      for (int dx = 0; dx < 32; ++dx)
        for (int c = 0; c < 3; ++c) {
          const int y = (p / 3) * 32 + dy - 12, x = (p % 3) * 32 + dx - 13;
          const float want = (y < 0 || y >= h || x < 0 || x >= w) ? 0.0f : image[(size_t(y) * w + x) * 3 + c];
          ASSERT_EQ(out[((size_t(p) * 32 + dy) * 32 + dx) * 3 + c], want) << p << " " << dy << " " << dx;
        }
}

// cpu/gemm.h beyond the model's shapes (tests/ops_test.cc): row counts that are not a
// multiple of the 6-row tile, widths that end in a partial panel, sums longer than a
// k-block, a start from `out` and the bias, GELU, and rows of `out` further apart than n.
TEST(Gemm, OddShapesMatchDoublePrecision) {
  struct Shape {
    int64_t m;
    int k, n;
    bool bias, accumulate, gelu;
    int64_t ldc;
  };
  for (const Shape& s : {Shape{1, 3, 1, false, false, false, 1},
                         Shape{7, 37, 17, true, false, false, 17},
                         Shape{13, 600, 33, true, true, false, 40},
                         Shape{200, 1100, 50, true, false, true, 64},
                         Shape{5, 1025, 16, false, true, false, 16}}) {
    const auto a = random_floats(size_t(s.m) * s.k, 31, -1.0f, 1.0f);
    const auto b = random_floats(size_t(s.k) * s.n, 32, -1.0f, 1.0f);
    const auto bias = random_floats(size_t(s.n), 33, -1.0f, 1.0f);
    auto out = random_floats(size_t(s.m) * s.ldc, 34, -1.0f, 1.0f);
    std::vector<float> want = out;
    for (int64_t i = 0; i < s.m; ++i)
      for (int j = 0; j < s.n; ++j) {
        double acc = (s.accumulate ? out[i * s.ldc + j] : 0.0) + (s.bias ? bias[j] : 0.0);
        for (int p = 0; p < s.k; ++p) acc += double(a[i * s.k + p]) * b[size_t(p) * s.n + j];
        want[i * s.ldc + j] = static_cast<float>(s.gelu ? gelu_tanh(acc) : acc);
      }
    std::vector<float> packed(size_t(cpu::packed_floats(s.k, s.n)));
    cpu::pack_columns(b.data(), s.k, s.n, s.n, packed.data());
    cpu::gemm(a.data(), s.m, s.k, packed.data(), s.n, s.bias ? bias.data() : nullptr,
              s.accumulate, s.gelu, out.data(), s.ldc);
    // Columns past n in each row are not the product's: they must be left as they were.
    EXPECT_TRUE(all_close(out, want, 2e-6f * std::sqrt(float(s.k)), 1e-5f))
        << "m " << s.m << " k " << s.k << " n " << s.n;
  }
}

// cpu::conv2d reads each window in place from the padded input (ConvWindows): the same
// sums in the same order as the GEMM on an explicit im2col matrix, so bit-identical to it,
// for the stem's shapes, odd sizes, a stride of 2 with a 3x3 kernel, k-blocks that end
// inside a kernel row (conv2: 576 = 2 x 288, rows of 192), and windows that stop short of
// the input's last rows and columns.
TEST(Conv2d, WindowsInPlaceMatchIm2colBitForBit) {
  // {batch, height, width, in_channels, kernel, stride, pad_top, pad_left, out_channels,
  //  out_height, out_width}
  for (const Conv2dShape& s : {Conv2dShape{2, 32, 32, 3, 7, 2, 2, 2, 64, 16, 16},
                               Conv2dShape{3, 8, 8, 64, 3, 1, 1, 1, 64, 8, 8},
                               Conv2dShape{3, 9, 7, 5, 3, 2, 1, 1, 6, 5, 4},
                               Conv2dShape{2, 10, 11, 2, 3, 2, 0, 0, 17, 4, 4},
                               Conv2dShape{1, 5, 5, 1, 5, 1, 2, 2, 3, 5, 5}}) {
    const int64_t positions = s.positions(), k = s.window();
    const auto in = random_floats(size_t(s.batch) * s.height * s.width * s.in_channels, 36,
                                  -1.0f, 1.0f);
    const auto kernel = random_floats(size_t(k) * s.out_channels, 37, -1.0f, 1.0f);
    std::vector<float> im2col(size_t(positions * k), 0.0f);
    std::vector<double> direct(size_t(positions) * s.out_channels, 0.0);
    for (int64_t p = 0; p < positions; ++p) {
      const int64_t img = p / (s.out_height * s.out_width);
      const int oy = int(p / s.out_width % s.out_height), ox = int(p % s.out_width);
      for (int dy = 0; dy < s.kernel; ++dy)
        for (int dx = 0; dx < s.kernel; ++dx)
          for (int c = 0; c < s.in_channels; ++c) {
            const int y = oy * s.stride - s.pad_top + dy, x = ox * s.stride - s.pad_left + dx;
            if (y < 0 || y >= s.height || x < 0 || x >= s.width) continue;
            const int64_t col = (dy * s.kernel + dx) * s.in_channels + c;
            const float v = in[size_t(((img * s.height + y) * s.width + x) * s.in_channels + c)];
            im2col[size_t(p * k + col)] = v;
            for (int o = 0; o < s.out_channels; ++o)
              direct[size_t(p * s.out_channels + o)] +=
                  double(v) * kernel[size_t(col * s.out_channels + o)];
          }
    }
    std::vector<float> packed(size_t(cpu::packed_floats(int(k), s.out_channels)));
    cpu::pack_columns(kernel.data(), int(k), s.out_channels, s.out_channels, packed.data());
    std::vector<float> want(size_t(positions) * s.out_channels), got(want.size()),
        columns(size_t(positions * k));
    cpu::gemm(im2col.data(), positions, int(k), packed.data(), s.out_channels, nullptr, false,
              false, want.data(), s.out_channels);
    cpu::conv2d(in.data(), s, kernel.data(), columns.data(), got.data());
    EXPECT_TRUE(all_close(got, want, 0, 0)) << "k " << s.kernel << " cin " << s.in_channels;
    EXPECT_TRUE(all_close(got, std::vector<float>(direct.begin(), direct.end()),
                          2e-6f * std::sqrt(float(k)), 1e-5f))
        << "k " << s.kernel << " cin " << s.in_channels;
  }
}

TEST(Gemm, TransposedPackingIsPackingOfTheTranspose) {
  const int k = 19, n = 21, ld = 23;  // bt [n, k] with rows ld apart
  const auto bt = random_floats(size_t(n) * ld, 35, -1.0f, 1.0f);
  std::vector<float> b(size_t(k) * n);
  for (int i = 0; i < k; ++i)
    for (int j = 0; j < n; ++j) b[size_t(i) * n + j] = bt[size_t(j) * ld + i];
  std::vector<float> want(size_t(cpu::packed_floats(k, n))), got(want.size());
  cpu::pack_columns(b.data(), k, n, n, want.data());
  cpu::pack_transposed(bt.data(), k, n, ld, got.data());
  EXPECT_TRUE(all_close(got, want, 0, 0));
}

TEST(NormalizeImage, MapsBytesToMinusOneToOne) {
  const std::vector<uint8_t> px = {0, 1, 127, 128, 254, 255};
  std::vector<float> out(px.size());
  cpu::normalize_image(px.data(), 6, out.data());
  EXPECT_EQ(out[0], -1.0f);
  EXPECT_EQ(out[5], 1.0f);
  for (int i = 0; i < 6; ++i) EXPECT_NEAR(out[i], px[i] / 127.5 - 1.0, 1e-6);
}

}  // namespace
}  // namespace musiq
