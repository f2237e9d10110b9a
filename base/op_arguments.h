// What each op's CPU twin (cpu/) and CUDA twin (kernels/) share of their arguments: the
// modes of linear and attention, and the checks, so that a bad argument is the same
// musiq::Error, with the same words, on both devices. Each twin runs the check before any
// work; the limits are the stricter device's.
#pragma once
#include "base/conv2d_shape.h"

namespace musiq {

// What linear adds to a[m, k] @ b[k, n] + bias[n] (cpu/ops.h, kernels/ops.cuh).
enum class Epilogue { kBias, kBiasGelu, kBiasResidual };

// Which queries attention computes in each sequence: all of them (out has the rows of
// qkv), or the first alone, the CLS token (out [sequences, hidden]), for the last block.
enum class Queries { kAll, kFirst };

// conv2d past its GEMM-only path (any conv but a 1x1, stride 1, unpadded one): `columns`
// is needed, and a stride no larger than the kernel, since the CPU keeps the padded input
// in the columns' floats, which hold it only while no stride skips pixels.
void check_conv2d_windows(const Conv2dShape& shape, const void* columns);

// gaussian_resize: plans made for this image's sides, and 1 to 4 channels, since the CPU's
// column pass holds a pixel in one 4-lane vector.
void check_gaussian_resize(int in_h, int in_w, int channels, int rows_in_size,
                           int cols_in_size);

}  // namespace musiq
