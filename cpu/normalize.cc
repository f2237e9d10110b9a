#include "cpu/ops.h"
#include "cpu/parallel_for.h"

namespace musiq::cpu {

void normalize_image(const uint8_t* rgb, int64_t count, float* out) {
  // normalize_value_range: (x - 0) / (255 - 0), then -1 + x * (1 - -1), all float32.
  parallel_for(count,
               [&](int64_t i) { out[i] = -1.0f + (static_cast<float>(rgb[i]) / 255.0f) * 2.0f; });
}

}  // namespace musiq::cpu
