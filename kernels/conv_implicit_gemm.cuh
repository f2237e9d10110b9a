// The fp32 path of cuda::conv2d for windowed shapes (kernels/conv_implicit_gemm.cu): the
// convolution read in place from the input, no columns. Its arguments are checked by
// cuda::conv2d (kernels/conv.cu); it throws musiq::Error when the launch fails.
#pragma once
#include <cuda_runtime.h>

#include "base/conv2d_shape.h"

namespace musiq::cuda {

void conv2d_implicit_gemm(const float* in, const Conv2dShape& shape, const float* kernel,
                          float* out, cudaStream_t stream);

}  // namespace musiq::cuda
