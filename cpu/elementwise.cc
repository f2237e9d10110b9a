#include "cpu/ops.h"
#include "cpu/vector_math.h"  // MUSIQ_VECTOR_CLONES

namespace musiq::cpu {

MUSIQ_VECTOR_CLONES void round_to_bf16(const float* in, int64_t count, float* out) {
#pragma omp parallel for schedule(static) if (count > (int64_t{1} << 16))
  for (int64_t i = 0; i < count; ++i) out[i] = musiq::round_to_bf16(in[i]);
}

MUSIQ_VECTOR_CLONES void add_relu(float* x, const float* residual, int64_t count) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < count; ++i) {
    const float v = x[i] + residual[i];
    x[i] = v > 0.0f ? v : 0.0f;
  }
}

void add_embeddings(float* x, int64_t rows, int dim, const int32_t* spatial,
                    const int32_t* scale_id, const float* pos_table, const float* scale_table) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    float* row = x + r * dim;
    const float* pos = pos_table + int64_t{spatial[r]} * dim;
    const float* scale = scale_table + int64_t{scale_id[r]} * dim;
    // Official order: (x + pos) + scale.
    for (int j = 0; j < dim; ++j) row[j] = (row[j] + pos[j]) + scale[j];
  }
}

}  // namespace musiq::cpu
