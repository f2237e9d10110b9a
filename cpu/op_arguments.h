// The argument checks each op's CPU twin (cpu/) and CUDA twin (kernels/) share, so that a
// bad argument is the same musiq::Error, with the same words, on both devices. Each twin
// runs the check before any work; the limits are the stricter device's.
#pragma once
#include "base/conv2d_shape.h"

namespace musiq::cpu {

// conv2d past its GEMM-only path (any conv but a 1x1, stride 1, unpadded one): `columns`
// is needed, and a stride no larger than the kernel, since the CPU keeps the padded input
// in the columns' floats, which hold it only while no stride skips pixels.
void check_conv2d_windows(const Conv2dShape& shape, const float* columns);

// gaussian_resize: plans made for this image's sides, and 1 to 4 channels, since the CPU's
// column pass holds a pixel in one 4-lane vector.
void check_gaussian_resize(int in_h, int in_w, int channels, int rows_in_size,
                           int cols_in_size);

}  // namespace musiq::cpu
