// A host float32 tensor: shape plus contiguous row-major data.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace musiq {

inline int64_t element_count(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

struct Tensor {
  std::vector<int64_t> shape;
  std::vector<float> data;

  int64_t numel() const { return element_count(shape); }
};

std::string shape_to_string(const std::vector<int64_t>& shape);  // "[7,7,3,64]"

}  // namespace musiq
