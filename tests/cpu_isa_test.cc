// The AVX-512 kernels against the AVX2 ones in one process (cpu/isa.h), at MUSIQ's shapes
// and at the tiles' edges: m not a multiple of either tile's rows (6, 12), n not a multiple
// of 16 or 32, k over a k-block (512).
// Bounds: the GEMM (dense, convolution, GELU epilogue) does the same float operations in the
// same order on both paths (an FMA a term, k-blocks in order), so the results are equal bit
// for bit. Attention's row sums and its CLS-only dot products are vector reductions whose
// lanes (8 or 16) change the order of a float32 sum of n terms: the output may differ by a
// few n * 2^-24 relatively; measured under 1e-6, tested against 1e-6 + 1e-5 |ref|.
// LayerNorm's double sums change order the same way, far below float32's rounding: tested
// against 1e-6 + 1e-6 |ref|.
#include <gtest/gtest.h>

#include <functional>
#include <vector>

#include "base/error.h"
#include "base/op_arguments.h"
#include "cpu/gemm.h"
#include "cpu/isa.h"
#include "cpu/ops.h"
#include "tests/test_util.h"

namespace musiq {
namespace {

using cpu::Isa;
using test::all_close;
using test::all_equal;
using test::random_floats;

// Runs a computation on the AVX2 and on the AVX-512 kernels; the ISA in use before is put
// back after. Skips where the CPU has no AVX-512.
class Avx512VersusAvx2 : public ::testing::Test {
 protected:
  void SetUp() override {
    if (cpu::supported_isa() < Isa::kAvx512)
      GTEST_SKIP() << "this CPU has no AVX-512 (F, BW, DQ and VL): only the AVX2 path runs";
  }
  void TearDown() override { cpu::set_cpu_isa(before_); }

  // What `run` writes, run on AVX2 ([0]) and on AVX-512 ([1]).
  std::vector<std::vector<float>> both(const std::function<std::vector<float>()>& run) {
    cpu::set_cpu_isa(Isa::kAvx2);
    std::vector<std::vector<float>> out{run()};
    cpu::set_cpu_isa(Isa::kAvx512);
    out.push_back(run());
    return out;
  }

 private:
  Isa before_ = cpu::cpu_isa();
};

TEST_F(Avx512VersusAvx2, GemmBitForBit) {
  struct Shape {
    int64_t m;
    int k, n;
    bool bias, accumulate, gelu;
  };
  // The encoder's QKV, MLP (k = 1536: three k-blocks) and output shapes at 577 tokens
  // (m = 48 x 12 + 1), then edges: one row, every tail of the 12-row tile, n of 17, 33,
  // 40 and 48 (a panel pair and a lone panel), k of 1025.
  for (const Shape& s :
       {Shape{577, 384, 1152, true, false, false}, Shape{577, 384, 1536, true, false, true},
        Shape{577, 1536, 384, true, true, false}, Shape{1, 3, 1, false, false, false},
        Shape{23, 37, 17, true, false, false}, Shape{13, 600, 33, true, true, false},
        Shape{200, 1100, 40, true, false, true}, Shape{11, 1025, 48, false, true, false},
        Shape{199, 64, 1024, false, false, false}}) {
    const auto a = random_floats(size_t(s.m) * s.k, 41, -1.0f, 1.0f);
    const auto b = random_floats(size_t(s.k) * s.n, 42, -1.0f, 1.0f);
    const auto bias = random_floats(size_t(s.n), 43, -1.0f, 1.0f);
    const auto start = random_floats(size_t(s.m) * s.n, 44, -1.0f, 1.0f);
    std::vector<float> packed(size_t(cpu::packed_floats(s.k, s.n)));
    cpu::pack_columns(b.data(), s.k, s.n, s.n, packed.data());
    const auto out = both([&] {
      std::vector<float> c = start;
      cpu::gemm(a.data(), s.m, s.k, packed.data(), s.n, s.bias ? bias.data() : nullptr,
                s.accumulate, s.gelu, c.data(), s.n);
      return c;
    });
    EXPECT_TRUE(all_equal(out[1], out[0])) << "m " << s.m << " k " << s.k << " n " << s.n;
  }
}

// The stem (7x7, stride 2, 3 channels in), a 3x3 convolution over 64 channels (k = 576:
// two k-blocks ending inside a kernel row) and 17 channels out.
TEST_F(Avx512VersusAvx2, ConvolutionBitForBit) {
  // {batch, height, width, in_channels, kernel, stride, pad_top, pad_left, out_channels,
  //  out_height, out_width}
  for (const Conv2dShape& s : {Conv2dShape{1, 64, 48, 3, 7, 2, 2, 2, 64, 32, 24},
                               Conv2dShape{2, 15, 13, 64, 3, 1, 1, 1, 64, 15, 13},
                               Conv2dShape{1, 9, 7, 5, 3, 2, 1, 1, 17, 5, 4}}) {
    const auto in =
        random_floats(size_t(s.batch) * s.height * s.width * s.in_channels, 45, -1.0f, 1.0f);
    const auto kernel = random_floats(size_t(s.window()) * s.out_channels, 46, -1.0f, 1.0f);
    const auto out = both([&] {
      std::vector<float> columns(size_t(s.positions() * s.window())),
          got(size_t(s.positions()) * s.out_channels);
      cpu::conv2d(in.data(), s, kernel.data(), columns.data(), got.data());
      return got;
    });
    EXPECT_TRUE(all_equal(out[1], out[0])) << "k " << s.kernel << " cin " << s.in_channels;
  }
}

// Packed sequences of 1, 33, 577 and 1100 tokens (two key blocks), all queries and the CLS
// query alone.
TEST_F(Avx512VersusAvx2, AttentionWithinSummationOrder) {
  const int heads = 6, hd = 64, hidden = heads * hd;
  const std::vector<int64_t> starts = {0, 1, 34, 611, 1711};
  const int sequences = int(starts.size()) - 1;
  const auto qkv = random_floats(size_t(starts.back()) * 3 * hidden, 47, -2.0f, 2.0f);
  for (Queries queries : {Queries::kAll, Queries::kFirst}) {
    const int64_t rows = queries == Queries::kAll ? starts.back() : sequences;
    const auto out = both([&] {
      std::vector<float> o(size_t(rows) * hidden);
      cpu::attention(qkv.data(), starts.data(), sequences, heads, hd, queries, o.data());
      return o;
    });
    EXPECT_TRUE(all_close(out[1], out[0], 1e-6, 1e-5))
        << "all queries: " << (queries == Queries::kAll);
  }
}

TEST_F(Avx512VersusAvx2, LayerNormWithinRounding) {
  const int64_t rows = 577;
  const int dim = 384;
  const auto x = random_floats(size_t(rows) * dim, 48, -3.0f, 3.0f);
  const auto scale = random_floats(dim, 49, 0.5f, 1.5f), bias = random_floats(dim, 50);
  const auto out = both([&] {
    std::vector<float> o(x.size());
    cpu::layer_norm(x.data(), rows, dim, scale.data(), bias.data(), 1e-6f, o.data());
    return o;
  });
  EXPECT_TRUE(all_close(out[1], out[0], 1e-6, 1e-6));
}

TEST(CpuIsa, RefusesWhatTheCpuLacks) {
  const Isa before = cpu::cpu_isa();
  EXPECT_LE(before, cpu::supported_isa());
  EXPECT_NO_THROW(cpu::set_cpu_isa(Isa::kBaseline));
  if (cpu::supported_isa() < Isa::kAvx512) EXPECT_THROW(cpu::set_cpu_isa(Isa::kAvx512), Error);
  cpu::set_cpu_isa(before);
  EXPECT_STREQ(cpu::isa_name(Isa::kAvx512), "avx512");
  EXPECT_STREQ(cpu::isa_name(Isa::kAvx2), "avx2");
  EXPECT_STREQ(cpu::isa_name(Isa::kBaseline), "baseline");
}

}  // namespace
}  // namespace musiq
