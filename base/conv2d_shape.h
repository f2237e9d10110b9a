// The shape of a 2-D convolution as both devices' conv2d take it (cpu/ops.h,
// kernels/ops.cuh): NHWC images, an HWIO kernel, a square window.
#pragma once
#include <cstdint>

namespace musiq {

// `batch` images of height x width x in_channels into out_height x out_width x out_channels.
// The kernel x kernel window moves by `stride`; pad_top and pad_left zeros lie before the
// image, and after it as many as the output size reaches.
struct Conv2dShape {
  int batch = 0, height = 0, width = 0, in_channels = 0;
  int kernel = 1, stride = 1, pad_top = 0, pad_left = 0;
  int out_channels = 0, out_height = 0, out_width = 0;

  // Output positions (image, y, x): the rows of the convolution's GEMM.
  int64_t positions() const { return int64_t{batch} * out_height * out_width; }
  // The inputs under one window, (dy, dx, channel): the GEMM's depth.
  int64_t window() const { return int64_t{kernel} * kernel * in_channels; }
  // A 1x1, stride-1, unpadded convolution: the GEMM on the input as it is.
  bool pointwise() const { return kernel == 1 && stride == 1 && pad_top == 0 && pad_left == 0; }
};

}  // namespace musiq
