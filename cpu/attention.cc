#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "cpu/ops.h"

namespace musiq::cpu {
namespace {
constexpr int64_t kQueryBlock = 256;  // rows of the score matrix held at once
}

void attention(const float* qkv, int64_t len, int heads, int head_dim, int64_t q_rows,
               float* out) {
  const int hidden = heads * head_dim;
  const int64_t ld = 3 * int64_t{hidden};
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  std::vector<float> scores(std::min(kQueryBlock, q_rows) * len);
  std::vector<float> q(std::min(kQueryBlock, q_rows) * head_dim);
  for (int h = 0; h < heads; ++h) {
    const float* k = qkv + hidden + h * head_dim;
    const float* v = qkv + 2 * hidden + h * head_dim;
    for (int64_t q0 = 0; q0 < q_rows; q0 += kQueryBlock) {
      const int64_t rows = std::min(kQueryBlock, q_rows - q0);
      // The official model scales the query before the dot product.
      for (int64_t r = 0; r < rows; ++r)
        for (int d = 0; d < head_dim; ++d)
          q[r * head_dim + d] = qkv[(q0 + r) * ld + h * head_dim + d] * scale;
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(rows),
                  static_cast<blasint>(len), head_dim, 1.0f, q.data(), head_dim, k,
                  static_cast<blasint>(ld), 0.0f, scores.data(), static_cast<blasint>(len));
#pragma omp parallel for schedule(static)
      for (int64_t r = 0; r < rows; ++r) {
        float* row = scores.data() + r * len;
        const float max = *std::max_element(row, row + len);
        float sum = 0.0f;
        for (int64_t j = 0; j < len; ++j) {
          row[j] = std::exp(row[j] - max);
          sum += row[j];
        }
        const float inv = 1.0f / sum;
        for (int64_t j = 0; j < len; ++j) row[j] *= inv;
      }
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<blasint>(rows),
                  head_dim, static_cast<blasint>(len), 1.0f, scores.data(),
                  static_cast<blasint>(len), v, static_cast<blasint>(ld), 0.0f,
                  out + q0 * hidden + h * head_dim, hidden);
    }
  }
}

}  // namespace musiq::cpu
