#include <algorithm>

#include "cpu/isa.h"
#include "cpu/ops.h"
#include "cpu/parallel_for.h"

namespace musiq::cpu {
namespace {

template <Isa>
__attribute__((always_inline)) inline void round_low_bits_run_kernel(const float* in, int64_t count,
                                                                     int bits, float* out) {
#pragma omp simd
  for (int64_t i = 0; i < count; ++i) out[i] = musiq::round_low_bits(in[i], bits);
}
MUSIQ_DISPATCH_BY_ISA(void, round_low_bits_run,
                      (const float* in, int64_t count, int bits, float* out),
                      (in, count, bits, out))

template <Isa>
__attribute__((always_inline)) inline void add_relu_run_kernel(float* x, const float* residual,
                                                               int64_t count) {
#pragma omp simd
  for (int64_t i = 0; i < count; ++i) {
    const float v = x[i] + residual[i];
    x[i] = v > 0.0f ? v : 0.0f;
  }
}
MUSIQ_DISPATCH_BY_ISA(void, add_relu_run, (float* x, const float* residual, int64_t count),
                      (x, residual, count))

constexpr int64_t kRun = 4096;  // floats a call: the dispatch costs nothing next to them
int64_t runs(int64_t count) { return (count + kRun - 1) / kRun; }

}  // namespace

void round_product_inputs(Precision p, const float* in, int64_t count, float* out) {
  if (p == Precision::kFp32) {
    if (out != in) std::copy_n(in, count, out);
    return;
  }
  const int bits = dropped_bits(p);
  // Short runs (the stem's padded rows) on the calling thread: a region costs more.
  if (count <= 16 * kRun) return round_low_bits_run(in, count, bits, out);
  parallel_for(runs(count), [&](int64_t r) {
    const int64_t i = r * kRun;
    round_low_bits_run(in + i, std::min(kRun, count - i), bits, out + i);
  });
}

void add_relu(float* x, const float* residual, int64_t count) {
  parallel_for(runs(count), [&](int64_t r) {
    const int64_t i = r * kRun;
    add_relu_run(x + i, residual + i, std::min(kRun, count - i));
  });
}

void add_embeddings(float* x, int64_t rows, int dim, const int32_t* spatial,
                    const int32_t* scale_id, const float* pos_table, const float* scale_table) {
  parallel_for(rows, [&](int64_t r) {
    float* row = x + r * dim;
    const float* pos = pos_table + int64_t{spatial[r]} * dim;
    const float* scale = scale_table + int64_t{scale_id[r]} * dim;
    // Official order: (x + pos) + scale.
    for (int j = 0; j < dim; ++j) row[j] = (row[j] + pos[j]) + scale[j];
  });
}

}  // namespace musiq::cpu
