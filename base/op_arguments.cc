#include "base/op_arguments.h"

#include <string>

#include "base/error.h"

namespace musiq {

void check_conv2d_windows(const Conv2dShape& shape, const void* columns) {
  const std::string kernel = std::to_string(shape.kernel) + "x" + std::to_string(shape.kernel);
  if (shape.stride > shape.kernel)
    throw Error("conv2d: a stride of " + std::to_string(shape.stride) + " is larger than the " +
                kernel + " kernel");
  if (columns == nullptr) throw Error("conv2d: a " + kernel + " conv needs a columns buffer");
}

void check_gaussian_resize(int in_h, int in_w, int channels, int rows_in_size,
                           int cols_in_size) {
  if (rows_in_size != in_h || cols_in_size != in_w)
    throw Error("gaussian_resize: plans for " + std::to_string(rows_in_size) + "x" +
                std::to_string(cols_in_size) + " given an image of " + std::to_string(in_h) +
                "x" + std::to_string(in_w));
  if (channels < 1 || channels > 4)
    throw Error("gaussian_resize: 1 to 4 channels, not " + std::to_string(channels));
}

}  // namespace musiq
