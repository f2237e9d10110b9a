// The tensor-core path of kernels/attention.cu (attention_tensor_cores.cu): cuda::attention
// for every query (Queries::kAll) under bf16 and tf32, its arguments checked there (head_dim
// 64, ranges, 16-byte alignment).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "base/precision.h"

namespace musiq::cuda {

void attention_tensor_cores(const float* qkv, const int64_t* seq_starts, int sequences,
                            int64_t longest, int heads, float* out, cudaStream_t stream,
                            Precision precision);

}  // namespace musiq::cuda
