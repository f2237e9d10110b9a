// cuda::attention (fused, online softmax; the CLS query alone split over the keys and
// merged) against cpu::attention (scores materialised per block of 256 queries, exact
// softmax, OpenBLAS GEMMs).
// Bound: 2e-5 abs + 1e-4 rel. Outputs are convex combinations of V rows (|v| < 1 here), so
// they are O(1) or smaller; the two sides differ in summation order only (tiled q.k, online
// running sum with rescaling, the merge of the key splits), each a few
// float roundings of O(1) quantities, ~1e-6. An indexing, tiling or rescaling bug gives
// errors of order 0.1 or more. Inputs U(-2, 2) give scores with a std of ~1.3 after the
// 1/8 scale: softmax rows neither flat nor one-hot.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "cpu/ops.h"
#include "kernels/ops.cuh"
#include "tests/gpu/gpu_test_util.h"

namespace musiq {
namespace {

using gpu_test::DeviceBuffer;

constexpr double kAbsTol = 2e-5, kRelTol = 1e-4;

struct AttentionCase {
  int64_t len, q_rows;  // q_rows: len (every query) or 1 (the CLS query alone)
  int heads;
};

Queries queries_of(int64_t len, int64_t q_rows) {
  return q_rows == len ? Queries::kAll : Queries::kFirst;
}

class AttentionGpuTest : public ::testing::TestWithParam<AttentionCase> {};

TEST_P(AttentionGpuTest, MatchesCpu) {
  MUSIQ_SKIP_WITHOUT_GPU();
  const AttentionCase c = GetParam();
  const int head_dim = 64, hidden = c.heads * head_dim;
  const auto qkv = test::random_floats(size_t(c.len) * 3 * hidden, 61, -2.0f, 2.0f);
  std::vector<float> want(size_t(c.q_rows) * hidden);
  const std::vector<int64_t> starts = {0, c.len};
  cpu::attention(qkv.data(), starts.data(), 1, c.heads, head_dim, queries_of(c.len, c.q_rows),
                 want.data());

  gpu_test::Stream stream;
  DeviceBuffer<float> d_qkv(qkv), d_out(want.size());
  DeviceBuffer<float> d_scratch(size_t(cuda::attention_scratch_floats(1, c.heads)));
  DeviceBuffer<int64_t> d_starts(starts);
  cuda::attention(d_qkv.get(), d_starts.get(), 1, c.len, c.heads, head_dim,
                  queries_of(c.len, c.q_rows), d_scratch.get(), d_out.get(), stream.get());
  stream.sync();
  EXPECT_TRUE(test::all_close(d_out.download(), want, kAbsTol, kRelTol));
  EXPECT_TRUE(d_out.guard_intact()) << "wrote past the end of the output";
  EXPECT_TRUE(d_scratch.guard_intact()) << "wrote past the end of the scratch";
}

// The longest sequence: a 12 MP photo's 12,001 tokens. On the CUDA emulator, where every
// query against every key at that length takes minutes, 3,001 tokens (47 key tiles) stand in
// for it with all queries; the CLS query alone still sees all 12,001.
#ifdef MUSIQ_CUDA_EMULATION
constexpr int64_t kLongAllQueries = 3001;
#else
constexpr int64_t kLongAllQueries = 12001;
#endif

INSTANTIATE_TEST_SUITE_P(
    Shapes, AttentionGpuTest,
    ::testing::Values(
        // len 1 (CLS only), 33 (a query tile and a row; a partial key tile), 961/962 (a
        // 1024x768 image), 12001 (a 12 MP photo), each with every query and with the CLS
        // query alone (last block).
        AttentionCase{1, 1, 6}, AttentionCase{33, 33, 6}, AttentionCase{33, 1, 6},
        AttentionCase{961, 961, 6}, AttentionCase{961, 1, 6}, AttentionCase{962, 962, 6},
        AttentionCase{kLongAllQueries, kLongAllQueries, 6}, AttentionCase{12001, 1, 6},
        // query tiles (32 rows) and key tiles (64): one short, exact, one past
        AttentionCase{31, 31, 2}, AttentionCase{32, 32, 2}, AttentionCase{63, 63, 1},
        AttentionCase{64, 64, 1}, AttentionCase{65, 65, 2}, AttentionCase{96, 96, 1},
        AttentionCase{97, 97, 3}, AttentionCase{128, 128, 2}, AttentionCase{129, 129, 3},
        // the CLS query's key splits (at least 32 keys each, chunks of 64 keys): one split,
        // splits of one partial chunk, of several chunks with a partial last one
        AttentionCase{31, 1, 1}, AttentionCase{97, 1, 1}, AttentionCase{129, 1, 3},
        AttentionCase{2047, 1, 6}, AttentionCase{3001, 1, 1}, AttentionCase{12001, 1, 1}),
    [](const auto& info) {
      const AttentionCase& c = info.param;
      return test::name("len", c.len, "_q", c.q_rows, "_h", c.heads);
    });

// Sequences of `lens` rows packed end to end (cu_seqlens), as a batch of images gives them,
// with random q|k|v of `hidden` columns each from `seed`.
struct PackedSequences {
  std::vector<int64_t> starts{0};
  int64_t rows = 0, longest = 0;
  std::vector<float> qkv;
};
PackedSequences packed_sequences(const std::vector<int64_t>& lens, int hidden, uint32_t seed) {
  PackedSequences p;
  for (int64_t n : lens) p.starts.push_back(p.starts.back() + n);
  p.rows = p.starts.back();
  p.longest = *std::max_element(lens.begin(), lens.end());
  p.qkv = test::random_floats(size_t(p.rows) * 3 * hidden, seed, -2.0f, 2.0f);
  return p;
}

// Packed sequences (cu_seqlens) of mixed lengths, as a batch of images gives them: each
// attends to itself only, every query and the CLS queries alone, against the CPU's packed
// attention (which equals each sequence alone bit for bit: tests/cpu_ops_test.cc).
void expect_packed_matches_cpu(const std::vector<int64_t>& lens, uint32_t seed) {
  const int heads = 6, head_dim = 64, hidden = heads * head_dim;
  const int sequences = int(lens.size());
  const auto [starts, rows, longest, qkv] = packed_sequences(lens, hidden, seed);
  gpu_test::Stream stream;
  DeviceBuffer<float> d_qkv(qkv);
  DeviceBuffer<float> d_scratch(size_t(cuda::attention_scratch_floats(sequences, heads)));
  DeviceBuffer<int64_t> d_starts(starts);
  for (Queries queries : {Queries::kAll, Queries::kFirst}) {
    const int64_t out_rows = queries == Queries::kAll ? rows : sequences;
    std::vector<float> want(size_t(out_rows) * hidden);
    cpu::attention(qkv.data(), starts.data(), sequences, heads, head_dim, queries, want.data());
    DeviceBuffer<float> d_out(want.size());
    cuda::attention(d_qkv.get(), d_starts.get(), sequences, longest, heads, head_dim, queries,
                    d_scratch.get(), d_out.get(), stream.get());
    stream.sync();
    EXPECT_TRUE(test::all_close(d_out.download(), want, kAbsTol, kRelTol))
        << (queries == Queries::kAll ? "all queries" : "CLS queries");
    EXPECT_TRUE(d_out.guard_intact()) << "wrote past the end of the output";
    EXPECT_TRUE(d_scratch.guard_intact()) << "wrote past the end of the scratch";
  }
}

// The CLS query's splits are sized by the longest sequence: the short ones leave most of
// their splits empty.
TEST(AttentionGpu, PackedSequencesMatchCpu) {
  MUSIQ_SKIP_WITHOUT_GPU();
  expect_packed_matches_cpu({1, 33, 962, 64, 129, 5}, 62);
}

// One token: the CLS query is the only query, one key, one split.
TEST(AttentionGpu, SingleTokenMatchesCpu) {
  MUSIQ_SKIP_WITHOUT_GPU();
  expect_packed_matches_cpu({1}, 64);
}

// Enough sequences that every head of every sequence is one CLS block (no split).
TEST(AttentionGpu, ManyPackedSequencesMatchCpu) {
  MUSIQ_SKIP_WITHOUT_GPU();
  std::vector<int64_t> lens;
  for (int i = 0; i < 50; ++i) lens.push_back(1 + (i * 37) % 100);
  expect_packed_matches_cpu(lens, 63);
}

// Under bf16 and tf32 (docs/precision.md) the GPU kernels (tensor cores for every query, the
// split CLS kernels for the CLS query alone) against cpu::attention at the same precision.
// Both round the same inputs (scaled q, k, v) and sum in float32 in their own orders, so
// the logits and the unrounded p agree to float32 rounding, and so do the outputs:
// kAbsTol + kRelTol, as for fp32 ...
// ... except where a p lies so close to a rounding boundary that the other side's float32
// rounding moves it across: that p then differs by one step of the precision, at most
// 2^-7 of it for bfloat16 (8 significant bits), 2^-10 for tf32 (11). Its key is not the
// row's max (whose p is exactly 1 on both sides), so its weight p / l is at most 1/2
// (l >= 1 + p), and |v| < 2: that output moves by at most one step x 2 x 1/2 = one step.
// Such a p needs a float32 difference within ~1e-6 of a boundary: rare. So every output
// must be within one step (and kRelTol), and all but 1% of them within the fp32 bound; a
// rounding point missed or added moves most outputs by ~1e-3 (bf16) and fails the second
// rule, an indexing or masking bug fails the first.
constexpr double kNearFp32Share = 0.99;

double one_step(Precision p) { return p == Precision::kBf16 ? 1.0 / 128 : 1.0 / 1024; }

::testing::AssertionResult matches_rounded_cpu(const std::vector<float>& got,
                                               const std::vector<float>& want, double step) {
  size_t beyond_fp32 = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double err = std::fabs(double(got[i]) - want[i]);
    if (!(err <= step + kRelTol * std::fabs(want[i])))
      return ::testing::AssertionFailure()
             << "element " << i << ": " << got[i] << " against " << want[i];
    if (err > kAbsTol + kRelTol * std::fabs(want[i])) ++beyond_fp32;
  }
  if (double(beyond_fp32) > (1.0 - kNearFp32Share) * double(got.size()))
    return ::testing::AssertionFailure()
           << beyond_fp32 << " of " << got.size() << " elements past the fp32 bound";
  return ::testing::AssertionSuccess();
}

// The largest |a - b| over the fp32 bound's scale: above 1 where a and b differ by more than
// float32 noise.
double largest_excess(const std::vector<float>& a, const std::vector<float>& b) {
  double most = 0.0;
  for (size_t i = 0; i < a.size(); ++i)
    most = std::max(most, std::fabs(double(a[i]) - b[i]) / (kAbsTol + kRelTol * std::fabs(b[i])));
  return most;
}

// cuda::attention at `precision` over packed sequences of `lens` rows against cpu::attention
// at that precision (matches_rounded_cpu) and at fp32, on data from `seed`.
void expect_rounded_matches_cpu(const std::vector<int64_t>& lens, int heads, Queries queries,
                                Precision precision, uint32_t seed) {
  SCOPED_TRACE(queries == Queries::kAll ? "all queries" : "CLS queries");
  const int head_dim = 64, hidden = heads * head_dim;
  const int sequences = int(lens.size());
  const auto [starts, rows, longest, qkv] = packed_sequences(lens, hidden, seed);
  const int64_t out_rows = queries == Queries::kAll ? rows : sequences;
  std::vector<float> want(size_t(out_rows) * hidden), exact(want.size());
  cpu::attention(qkv.data(), starts.data(), sequences, heads, head_dim, queries, want.data(),
                 precision);
  cpu::attention(qkv.data(), starts.data(), sequences, heads, head_dim, queries, exact.data());
  gpu_test::Stream stream;
  DeviceBuffer<int64_t> d_starts(starts);
  DeviceBuffer<float> d_qkv(qkv), d_out(want.size());
  DeviceBuffer<float> d_scratch(size_t(cuda::attention_scratch_floats(sequences, heads)));
  cuda::attention(d_qkv.get(), d_starts.get(), sequences, longest, heads, head_dim, queries,
                  d_scratch.get(), d_out.get(), stream.get(), precision);
  stream.sync();
  const std::vector<float> got = d_out.download();
  EXPECT_TRUE(matches_rounded_cpu(got, want, one_step(precision)));
  EXPECT_TRUE(d_out.guard_intact()) << "wrote past the end of the output";
  EXPECT_TRUE(d_scratch.guard_intact()) << "wrote past the end of the scratch";
  // The rounding is there: the result is as far from fp32 as the CPU's is.
  EXPECT_GT(largest_excess(got, exact), 10.0);
  EXPECT_GT(largest_excess(want, exact), 10.0);
}

class AttentionGpuReducedTest : public ::testing::TestWithParam<Precision> {};

// Packed sequences of 1 (the CLS query alone), 15, 16 and 17 rows (around a fragment's 16),
// 100 and 130 (two and three 64-row query tiles, partial 64-key tiles) and 200, every query
// and the CLS queries alone, on fresh data per query mode.
TEST_P(AttentionGpuReducedTest, PackedSequencesMatchCpuAtThatPrecision) {
  MUSIQ_SKIP_WITHOUT_GPU();
  const std::vector<int64_t> lens = {17, 1, 130, 15, 16, 100, 200};
  expect_rounded_matches_cpu(lens, 2, Queries::kAll, GetParam(), 65);
  expect_rounded_matches_cpu(lens, 2, Queries::kFirst, GetParam(), 66);
}

// The CLS queries alone, each sequence's keys split over several blocks: one key; 997 (a
// prime: no split, 64-key chunk or tile divides it); 3,001, the longest, which sizes the
// splits (9 of 334 keys for 5 sequences of 6 heads), so the shorter sequences leave some
// of theirs empty; 64, one chunk.
TEST_P(AttentionGpuReducedTest, ClsQueriesSplitOverKeysMatchCpuAtThatPrecision) {
  MUSIQ_SKIP_WITHOUT_GPU();
  expect_rounded_matches_cpu({997, 1, 3001, 33, 64}, 6, Queries::kFirst, GetParam(), 67);
}

INSTANTIATE_TEST_SUITE_P(Precisions, AttentionGpuReducedTest,
                         ::testing::Values(Precision::kBf16, Precision::kTf32),
                         [](const auto& info) { return precision_name(info.param); });

TEST(AttentionGpu, RejectsUnsupportedHeadDim) {
  MUSIQ_SKIP_WITHOUT_GPU();
  gpu_test::Stream stream;
  DeviceBuffer<float> qkv(3 * 2 * 32), out(2 * 32);
  DeviceBuffer<float> scratch(size_t(cuda::attention_scratch_floats(1, 2)));
  DeviceBuffer<int64_t> starts(std::vector<int64_t>{0, 1});
  EXPECT_THROW(cuda::attention(qkv.get(), starts.get(), 1, 1, 2, 32, Queries::kFirst,
                               scratch.get(), out.get(), stream.get()),
               Error);
}

TEST(AttentionGpu, RejectsMisalignedBuffersAndMissingScratch) {
  MUSIQ_SKIP_WITHOUT_GPU();
  gpu_test::Stream stream;
  const int heads = 1, hidden = 64;
  DeviceBuffer<float> qkv(3 * hidden + 4), out(hidden + 4);
  DeviceBuffer<float> scratch(size_t(cuda::attention_scratch_floats(1, heads)));
  DeviceBuffer<int64_t> starts(std::vector<int64_t>{0, 1});
  EXPECT_THROW(cuda::attention(qkv.get() + 1, starts.get(), 1, 1, heads, 64, Queries::kAll,
                               nullptr, out.get(), stream.get()),
               Error);
  EXPECT_THROW(cuda::attention(qkv.get(), starts.get(), 1, 1, heads, 64, Queries::kFirst,
                               scratch.get(), out.get() + 2, stream.get()),
               Error);
  EXPECT_THROW(cuda::attention(qkv.get(), starts.get(), 1, 1, heads, 64, Queries::kFirst,
                               nullptr, out.get(), stream.get()),
               Error);
}

}  // namespace
}  // namespace musiq
