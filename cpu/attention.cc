// attention: softmax(q k^T) v per sequence and head on cpu/gemm.h, as one parallel region of
// (head, 256-row query block) tasks; K^T and V are packed once per (sequence, head) and
// shared by that head's query blocks (by its one task where it has one). Keys run in blocks
// of kKeyBlock with an online softmax (a running max and sum, as flash attention), so a
// thread's scores stay at 256 x 1024 floats (1 MB) at any length; up to 1024 tokens is one
// block. CLS-only queries skip the packing.
// Under bf16 or tf32 (docs/precision.md) the scaled query, K and V are rounded as they are
// copied or packed, and the probabilities after the row sum has taken them in float32; where
// the CPU computes bf16 products (cpu/bf16_gemm.h), K^T and V are packed into its tiles, the
// scaled query and the probabilities are written once as the bfloat16 rows its GEMM reads
// (bf16::gemm_rounded), and both products run there.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "base/precision.h"
#include "cpu/bf16_gemm.h"
#include "cpu/gemm.h"
#include "cpu/isa.h"
#include "cpu/ops.h"
#include "cpu/vector_math.h"

namespace musiq::cpu {
namespace {

constexpr int64_t kQueryBlock = 256;  // most rows of a thread's score block
constexpr int64_t kKeyBlock = 1024;   // most columns of it: a multiple of kPanelWidth
static_assert(kKeyBlock % kPanelWidth == 0, "key blocks start at a panel of K^T");

// The softmax reads rows in steps of kLanes floats and masks the last step's lanes past the
// row rather than finishing in scalar code, so score buffers hold more than their rows. The
// lanes are explicit (GCC and clang both vectorise them), and so is the order of the sum:
// lane by lane (the masked step first), then the lanes pairwise (l + 8 into l, then 4, 2, 1).
constexpr int kLanes = 16;
// What a masked step may read and write back past a score buffer's last row.
constexpr int64_t kRowSlack = kLanes;

// How a row's probabilities are stored for the product with V: floats in place (fp32),
// floats in place rounded as products' inputs (bf16 or tf32 on the fp32 kernels), or
// bfloat16 bits in rows of their own for bf16::gemm_rounded.
enum class Stored { kFloats, kRounded, kBits };

// Lanes [0, left) of a step are in the row; with kMasked false, all are.
template <bool kMasked>
__attribute__((always_inline)) inline bool in_row(int l, int left) {
  return !kMasked || l < left;
}

// lane[l] = the larger of it and step[l], for the lanes in the row.
template <bool kMasked>
__attribute__((always_inline)) inline void max_step(const float* step, int left, float* lane) {
#pragma omp simd
  for (int l = 0; l < kLanes; ++l) {
    const float x = step[l];
    lane[l] = in_row<kMasked>(l, left) && x > lane[l] ? x : lane[l];
  }
}

// The largest element of row [len] (NaNs are never taken).
template <Isa>
__attribute__((always_inline)) inline float row_max_kernel(const float* row, int64_t len) {
  float lane[kLanes];
  for (int l = 0; l < kLanes; ++l) lane[l] = row[0];
  int64_t j = 0;
  for (; j + kLanes <= len; j += kLanes) max_step<false>(row + j, kLanes, lane);
  if (j < len) max_step<true>(row + j, static_cast<int>(len - j), lane);
  for (int half = kLanes / 2; half > 0; half /= 2)
    for (int l = 0; l < half; ++l) lane[l] = lane[l + half] > lane[l] ? lane[l + half] : lane[l];
  return lane[0];
}

// The step of exp_row_kernel at j: e = exp(row - max) for the lanes in the row, 0 past
// it, summed into lane[] and stored as kStored says; lanes past the row keep their floats.
template <Stored kStored, bool kMasked>
__attribute__((always_inline)) inline void exp_step(float* row, int64_t j, int left, float max,
                                                    int dropped, float* lane) {
  float* step = row + j;
  float e[kLanes];
#pragma omp simd
  for (int l = 0; l < kLanes; ++l) {
    const bool in = in_row<kMasked>(l, left);
    const float x = step[l];
    e[l] = in ? exp_approx(x - max) : 0.0f;
    lane[l] += e[l];
    if constexpr (kStored == Stored::kFloats) step[l] = in ? e[l] : x;
    if constexpr (kStored == Stored::kRounded) step[l] = in ? round_low_bits(e[l], dropped) : x;
  }
}

// e = exp(row - max) for row [len], stored in place as kStored says (kRounded: `dropped`
// low bits of each float dropped); returns the float32 sum of the unrounded e. `end` is len
// rounded up to whole steps.
template <Isa, Stored kStored>
__attribute__((always_inline)) inline float exp_row_kernel(float* row, int64_t len, int64_t end,
                                                           float max, int dropped) {
  float lane[kLanes] = {};
  // The masked steps first: their stores reach into the next row, whose first loads would
  // otherwise follow them at once and wait for them (store forwarding fails on a partial
  // overlap).
  const int64_t whole = len / kLanes * kLanes;
  for (int64_t j = whole; j < end; j += kLanes)
    exp_step<kStored, true>(row, j, static_cast<int>(len - j), max, dropped, lane);
  for (int64_t j = 0; j < whole; j += kLanes)
    exp_step<kStored, false>(row, j, kLanes, max, dropped, lane);
  for (int half = kLanes / 2; half > 0; half /= 2)
    for (int l = 0; l < half; ++l) lane[l] += lane[l + half];
  return lane[0];
}

// Where a block's probabilities go: see Stored. Bit rows are bits_stride apart.
struct Probabilities {
  Stored stored;
  int dropped;     // kRounded
  uint16_t* bits;  // kBits
  int64_t bits_stride;
};

// Probabilities at `precision` on the fp32 kernels, in place.
Probabilities in_place(Precision precision) {
  return {precision == Precision::kFp32 ? Stored::kFloats : Stored::kRounded,
          dropped_bits(precision), nullptr, 0};
}

// The float32 sum of the e of row [len] against `max`, stored as `p` says (row r of a block).
template <Isa kIsa>
__attribute__((always_inline)) inline float exp_row_as(const Probabilities& p, int64_t r,
                                                       float* row, int64_t len, float max) {
  const int64_t end = (len + kLanes - 1) / kLanes * kLanes;
  switch (p.stored) {
    case Stored::kFloats:
      return exp_row_kernel<kIsa, Stored::kFloats>(row, len, end, max, 0);
    case Stored::kRounded:
      return exp_row_kernel<kIsa, Stored::kRounded>(row, len, end, max, p.dropped);
    case Stored::kBits: break;
  }
  // The floats first, then rounded by the bf16 kernels' conversion: 32 values an instruction.
  const float sum = exp_row_kernel<kIsa, Stored::kFloats>(row, len, end, max, 0);
  uint16_t* bits = p.bits + r * p.bits_stride;
  bf16::to_bf16_bits(row, len, bits);
  std::fill(bits + len, bits + p.bits_stride, uint16_t{0});
  return sum;
}

// A key block's scores [rows, keys] into probabilities, with the online softmax's running
// max and sum per row: the first block sets them; a later one with a larger max rescales
// the sum, and sets rescale[r] to the factor for the row's output so far (1 if none).
template <Isa kIsa>
__attribute__((always_inline)) inline void softmax_block_kernel(float* scores, int64_t rows,
                                                                int64_t keys, bool first,
                                                                const Probabilities& p,
                                                                float* maxes, float* sums,
                                                                float* rescale) {
  for (int64_t r = 0; r < rows; ++r) {
    float* row = scores + r * keys;
    const float block_max = row_max_kernel<kIsa>(row, keys);
    if (first) {
      maxes[r] = block_max;
      sums[r] = exp_row_as<kIsa>(p, r, row, keys, block_max);
      continue;
    }
    // A larger max: what was summed so far is rescaled to it.
    const float max = std::max(maxes[r], block_max);
    rescale[r] = exp_approx(maxes[r] - max);
    maxes[r] = max;
    sums[r] = sums[r] * rescale[r] + exp_row_as<kIsa>(p, r, row, keys, max);
  }
}
MUSIQ_DISPATCH_BY_ISA(void, softmax_block,
                      (float* scores, int64_t rows, int64_t keys, bool first,
                       const Probabilities& p, float* maxes, float* sums, float* rescale),
                      (scores, rows, keys, first, p, maxes, sums, rescale))

// How one sequence is cut into tasks: query blocks of `block` rows, times the heads.
struct SequencePlan {
  int64_t start, len, q_rows, block, first_task;
  int64_t out_row;  // where its first query's output goes
  int64_t packed;   // where its heads' packed K^T and V start (all queries only)
};

// softmax(q . k_j) . v_j for one query row q (already scaled and rounded)
// against len keys and values, rows ld apart, into out [head_dim]; `scores` holds len
// floats and kRowSlack more.
template <Isa kIsa>
__attribute__((always_inline)) inline void attend_one_kernel(const float* q, const float* k,
                                                             const float* v, int64_t len,
                                                             int64_t ld, int head_dim,
                                                             Precision precision,
                                                             float* scores, float* out) {
  for (int64_t j = 0; j < len; ++j) {
    float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
    for (int d = 0; d < head_dim; ++d) dot += q[d] * round_for_products(precision, k[j * ld + d]);
    scores[j] = dot;
  }
  const float inv = 1.0f / exp_row_as<kIsa>(in_place(precision), 0, scores, len,
                                            row_max_kernel<kIsa>(scores, len));
  std::fill_n(out, head_dim, 0.0f);
  for (int64_t j = 0; j < len; ++j) {
    const float p = scores[j];
#pragma omp simd
    for (int d = 0; d < head_dim; ++d) out[d] += p * round_for_products(precision, v[j * ld + d]);
  }
  for (int d = 0; d < head_dim; ++d) out[d] *= inv;
}
MUSIQ_DISPATCH_BY_ISA(void, attend_one,
                      (const float* q, const float* k, const float* v, int64_t len, int64_t ld,
                       int head_dim, Precision precision, float* scores, float* out),
                      (q, k, v, len, ld, head_dim, precision, scores, out))

}  // namespace

void attention(const float* qkv, const int64_t* seq_starts, int sequences, int heads,
               int head_dim, Queries queries, float* out, Precision precision) {
  if (sequences <= 0) return;
  const bool tiled = precision == Precision::kBf16 && bf16::tiled();
  const int hidden = heads * head_dim;
  const int64_t ld = 3 * int64_t{hidden};
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  // Kept across calls, as the score blocks below: no allocation per layer.
  thread_local std::vector<SequencePlan> plans;
  plans.clear();
  int64_t tasks = 0, packed_total = 0;
  size_t most_keys = 0, most_block = 0;
  bool one_block = true;  // every sequence one query block per head
  const bool all = queries == Queries::kAll;
  // Per head of a sequence: K^T [head_dim, len] and V [len, head_dim], packed: floats, or
  // bfloat16 values in bf16::pack's tiles (V per key block: whole blocks but the last).
  auto head_floats = [&](int64_t len) {
    return packed_floats(head_dim, static_cast<int>(len)) +
           packed_floats(static_cast<int>(len), head_dim);
  };
  auto v_tiles_at = [&](int64_t j0) {
    return j0 / kKeyBlock * bf16::packed_count(int{kKeyBlock}, head_dim);
  };
  auto head_tiles = [&](int64_t len) {
    const int64_t last = (len - 1) / kKeyBlock * kKeyBlock;
    return bf16::packed_count(head_dim, static_cast<int>(len)) + v_tiles_at(last) +
           bf16::packed_count(static_cast<int>(len - last), head_dim);
  };
  auto head_size = [&](int64_t len) { return tiled ? head_tiles(len) : head_floats(len); };
  for (int s = 0; s < sequences; ++s) {
    const int64_t start = seq_starts[s], len = seq_starts[s + 1] - start;
    const int64_t q_rows = queries == Queries::kAll ? len : std::min<int64_t>(1, len);
    if (q_rows <= 0) continue;
    // Blocks depend on this sequence alone, so it is computed as it would be by itself.
    // Equal blocks (962 rows: 4 x 241, not 3 x 256 + 194) so the tasks balance.
    const int64_t blocks = (q_rows + kQueryBlock - 1) / kQueryBlock;
    const int64_t block = (q_rows + blocks - 1) / blocks;
    plans.push_back({start, len, q_rows, block, tasks, all ? start : s, packed_total});
    tasks += blocks * heads;
    one_block = one_block && blocks == 1;
    if (all) packed_total += heads * head_size(len);
    // The CLS-only queries take all len scores at once (attend_one).
    most_keys = std::max(most_keys, size_t(all ? std::min(len, kKeyBlock) : len));
    most_block = std::max(most_block, size_t(block));
  }
  const std::vector<SequencePlan>& plan = plans;  // the threads read the caller's lists
  thread_local std::vector<float> packed;
  thread_local std::vector<uint16_t> tiles;
  if (tiled)
    tiles.resize(std::max(tiles.size(), size_t(packed_total)));
  else
    packed.resize(std::max(packed.size(), size_t(packed_total)));
  float* const packed_base = packed.data();
  uint16_t* const tiles_base = tiles.data();
  // K^T and V of a (sequence, head), packed, as the products read them.
  auto pack_head = [&](const SequencePlan& p, int h) {
    const float* seq = qkv + p.start * ld;
    const int len = static_cast<int>(p.len);
    if (tiled) {
      uint16_t* kt = tiles_base + p.packed + h * head_tiles(p.len);
      bf16::pack(seq + hidden + h * head_dim, head_dim, len, 1, ld, kt);
      uint16_t* v = kt + bf16::packed_count(head_dim, len);
      for (int j0 = 0; j0 < len; j0 += int{kKeyBlock})
        bf16::pack(seq + (j0 * ld) + 2 * hidden + h * head_dim, std::min(int{kKeyBlock}, len - j0),
                   head_dim, ld, 1, v + v_tiles_at(j0));
      return;
    }
    float* kt = packed_base + p.packed + h * head_floats(p.len);
    pack_transposed(seq + hidden + h * head_dim, head_dim, len, ld, kt);
    // V per key block, each block a packed matrix of its own (k = its keys).
    float* v = kt + packed_floats(head_dim, len);
    for (int j0 = 0; j0 < len; j0 += int{kKeyBlock}) {
      const int keys = std::min(int{kKeyBlock}, len - j0);
      pack_columns(seq + (j0 * ld) + 2 * hidden + h * head_dim, keys, head_dim, ld,
                   v + packed_floats(j0, head_dim));
    }
    const int64_t count = packed_floats(head_dim, len) + packed_floats(len, head_dim);
    round_product_inputs(precision, kt, count, kt);
  };
  // Heads shared by several query blocks are packed first, all of them; where each head is
  // one block (up to 256 queries), its task packs it, with no barrier before the products.
  const bool pack_first = all && !one_block;
  // One task per (sequence, head, query block); the products run single-threaded inside
  // the parallel region, so there are no barriers per head or product.
  // Under tiled bf16, q and p are written once as bfloat16 rows, as bf16::gemm_rounded
  // reads them: rows of whole tiles, and blocks of whole 32-row tasks.
  const int64_t q16_stride = bf16::rounded_stride(head_dim);
  const int64_t p16_stride = bf16::rounded_stride(static_cast<int>(most_keys));
  const int64_t rows16 = (int64_t(most_block) + 31) / 32 * 32;
#pragma omp parallel
  {
    // Per thread, kept across calls (OpenMP reuses its threads): after the largest image
    // so far, scoring allocates nothing here.
    thread_local std::vector<float> scores, q, row_maxes, row_sums, rescales;
    thread_local std::vector<uint16_t> q16, p16;
    scores.resize(std::max(scores.size(), most_block * most_keys + kRowSlack));
    q.resize(std::max(q.size(), most_block * head_dim));
    row_maxes.resize(std::max(row_maxes.size(), most_block));
    row_sums.resize(std::max(row_sums.size(), most_block));
    rescales.resize(std::max(rescales.size(), most_block));
    if (tiled) {
      q16.resize(std::max(q16.size(), size_t(rows16 * q16_stride)));
      p16.resize(std::max(p16.size(), size_t(rows16 * p16_stride)));
    }
    if (pack_first)
#pragma omp for schedule(dynamic)
      for (int64_t i = 0; i < int64_t(plan.size()) * heads; ++i)
        pack_head(plan[i / heads], static_cast<int>(i % heads));
#pragma omp for schedule(dynamic)
    for (int64_t task = 0; task < tasks; ++task) {
      const auto it = std::upper_bound(
          plan.begin(), plan.end(), task,
          [](int64_t t, const SequencePlan& p) { return t < p.first_task; });
      const SequencePlan& p = *(it - 1);
      const int64_t local = task - p.first_task;
      const int h = static_cast<int>(local % heads);
      const int64_t q0 = local / heads * p.block;
      const int64_t rows = std::min(p.block, p.q_rows - q0);
      const int64_t len = p.len;
      const float* seq = qkv + p.start * ld;
      // The official model scales the query before the dot product.
      const bool q_bits = tiled && all;
      for (int64_t r = 0; r < rows; ++r) {
        const float* from = seq + (q0 + r) * ld + h * head_dim;
        float* to = q.data() + r * head_dim;
#pragma omp simd
        for (int d = 0; d < head_dim; ++d) to[d] = from[d] * scale;
        if (q_bits) {
          uint16_t* bits = q16.data() + r * q16_stride;
          bf16::to_bf16_bits(to, head_dim, bits);
          std::fill(bits + head_dim, bits + q16_stride, uint16_t{0});
        }
      }
      if (!q_bits) round_product_inputs(precision, q.data(), rows * head_dim, q.data());
      float* o = out + (p.out_row + q0) * hidden + h * head_dim;
      if (!all) {
        attend_one(q.data(), seq + hidden + h * head_dim, seq + 2 * hidden + h * head_dim, len,
                   ld, head_dim, precision, scores.data(), o);
        continue;
      }
      if (!pack_first) pack_head(p, h);
      const float* kt = tiled ? nullptr : packed_base + p.packed + h * head_floats(len);
      const float* v = tiled ? nullptr : kt + packed_floats(head_dim, static_cast<int>(len));
      const uint16_t* kt_tiles = tiled ? tiles_base + p.packed + h * head_tiles(len) : nullptr;
      const uint16_t* v_tiles =
          tiled ? kt_tiles + bf16::packed_count(head_dim, static_cast<int>(len)) : nullptr;
      for (int64_t j0 = 0; j0 < len; j0 += kKeyBlock) {
        const int keys = static_cast<int>(std::min(kKeyBlock, len - j0));
        const Probabilities probabilities =
            tiled ? Probabilities{Stored::kBits, 0, p16.data(), bf16::rounded_stride(keys)}
                  : in_place(precision);
        // The key block's panels of K^T lie end to end from panel j0 / 16.
        if (tiled)
          bf16::gemm_rounded(q16.data(), rows, head_dim, q16_stride,
                             kt_tiles + bf16::packed_count(head_dim, static_cast<int>(j0)), keys,
                             nullptr, false, false, scores.data(), keys);
        else
          gemm(q.data(), rows, head_dim, kt + j0 * head_dim, keys, nullptr, false, false,
               scores.data(), keys);
        softmax_block(scores.data(), rows, keys, j0 == 0, probabilities, row_maxes.data(),
                      row_sums.data(), rescales.data());
        if (j0 > 0)
          for (int64_t r = 0; r < rows; ++r)
            if (rescales[r] != 1.0f)
              for (int d = 0; d < head_dim; ++d) o[r * hidden + d] *= rescales[r];
        if (tiled)
          bf16::gemm_rounded(p16.data(), rows, keys, probabilities.bits_stride,
                             v_tiles + v_tiles_at(j0), head_dim, nullptr, j0 > 0, false, o, hidden);
        else
          gemm(scores.data(), rows, keys, v + packed_floats(static_cast<int>(j0), head_dim),
               head_dim, nullptr, j0 > 0, false, o, hidden);
      }
      // Softmax normalisation applied to the output row instead of the len scores.
      for (int64_t r = 0; r < rows; ++r) {
        const float inv = 1.0f / row_sums[r];
        for (int d = 0; d < head_dim; ++d) o[r * hidden + d] *= inv;
      }
    }
  }
}

}  // namespace musiq::cpu
