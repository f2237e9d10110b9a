#include <algorithm>
#include <cmath>

#include "cpu/ops.h"

namespace musiq::cpu {

float head_score(const float* logits, int num_classes) {
  if (num_classes == 1) return logits[0];
  // AVA: softmax over the 10 score buckets, then the mean score sum p_i * i, i = 1..C.
  const float max = *std::max_element(logits, logits + num_classes);
  double sum = 0.0, weighted = 0.0;
  for (int i = 0; i < num_classes; ++i) {
    const double e = std::exp(double(logits[i]) - max);
    sum += e;
    weighted += e * (i + 1);
  }
  return static_cast<float>(weighted / sum);
}

}  // namespace musiq::cpu
