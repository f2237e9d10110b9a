// The GPU counterparts of the CPU ops in cpu/ops.h: the same names and the same argument
// order, with device pointers and a trailing stream. Every function only enqueues work on
// `stream` (no synchronisation) and throws musiq::Error when a launch fails or an argument
// is outside what the kernel supports. All tensors are float32, row-major, NHWC, like the
// CPU side. Host entry points only: kernels stay private to their .cu files.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace musiq::cuda {

// kernels/normalize.cu: out[i] = pixel / 255 * 2 - 1 (bit-identical to the CPU).
void normalize_image(const uint8_t* rgb, int64_t count, float* out, cudaStream_t stream);

// kernels/layer_norm.cu: row-wise LayerNorm over `dim`, biased variance. x [rows, dim].
void layer_norm(const float* x, int64_t rows, int dim, const float* scale, const float* bias,
                float eps, float* out, cudaStream_t stream);

// kernels/elementwise.cu: x[r] += pos_table[spatial[r]] + scale_table[scale_id[r]] (in that
// order: (x + pos) + scale), x [rows, dim]; the index arrays live on the device too.
void add_embeddings(float* x, int64_t rows, int dim, const int32_t* spatial,
                    const int32_t* scale_id, const float* pos_table, const float* scale_table,
                    cudaStream_t stream);

// kernels/elementwise.cu: x = relu(x + residual), count elements.
void add_relu(float* x, const float* residual, int64_t count, cudaStream_t stream);

// kernels/elementwise.cu: the epilogues of cpu::linear, for a GEMM that wrote x [rows, cols]:
// add_bias:  x[r, j] += bias[j]                     (Epilogue::kBias; before a beta=1
//                                                     GEMM it is kBiasResidual's bias step)
// gelu_bias: x[r, j] = gelu_tanh(x[r, j] + bias[j])  (Epilogue::kBiasGelu; bias may be null)
void add_bias(float* x, int64_t rows, int cols, const float* bias, cudaStream_t stream);
void gelu_bias(float* x, int64_t rows, int cols, const float* bias, cudaStream_t stream);

// kernels/group_norm.cu: in place GroupNorm over (H*W, channels of a group) per image, then
// per-channel scale/bias, then ReLU if `relu`. x [n, hw, c]; needs c % groups == 0 and
// c <= 1024.
void group_norm(float* x, int n, int hw, int c, int groups, const float* scale,
                const float* bias, float eps, bool relu, cudaStream_t stream);

// kernels/max_pool.cu: 3x3 max pool, stride 2, SAME padding. in [n,h,w,c], out [n,out_h,out_w,c].
void max_pool_3x3_s2(const float* in, int n, int h, int w, int c, int out_h, int out_w,
                     float* out, cudaStream_t stream);

// kernels/head.cu: the quality score from the head's logits, written to *score (device):
// the logit itself for one class, else the mean of the softmax over classes 1..C.
// (cpu::head_score returns the float; here it stays on the device until the caller copies.)
void head_score(const float* logits, int num_classes, float* score, cudaStream_t stream);

}  // namespace musiq::cuda
