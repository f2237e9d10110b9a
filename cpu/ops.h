// The CPU implementation of every MUSIQ op. kernels/ops.cuh declares the GPU
// counterparts with the same names and the same argument order (device pointers
// plus a stream); tests compare the two. All tensors are float32, row-major, NHWC.
// A `precision` of kBf16 (kTf32) rounds the op's products' inputs to bfloat16 (tf32) as
// docs/precision.md defines; kernels given packed under it hold rounded values already
// (round_product_inputs before pack_columns). tf32 is a GPU precision: the CPU ops compute it
// as the GPU ops' twins, by rounding and then the fp32 kernels.
#pragma once
#include <cstdint>

#include "base/op_arguments.h"  // Epilogue, Queries
#include "base/precision.h"
#include "base/resize_plan.h"

namespace musiq::cpu {

// pixel / 255 * 2 - 1, computed as the official normalize_value_range does.
void normalize_image(const uint8_t* rgb, int64_t count, float* out);

// Separable resize by the plans given (the model's Gaussian ones, or the triangle ones of a
// target size): rows (height) first into `tmp` [out_h, in_w, c], then columns; c <= 4.
void gaussian_resize(const float* in, int in_h, int in_w, int channels,
                     const ResizePlan& rows, const ResizePlan& cols, float* tmp, float* out);

// conv2d_packed() under bf16 with the kernel packed by bf16::pack (cpu/bf16_gemm.h), on the
// CPU's bf16 kernel (where bf16::tiled()): `columns` holds the padded input, as there.
void conv2d_bf16(const float* in, const Conv2dShape& shape, const uint16_t* packed_kernel,
                float* columns, float* out);

// SAME patches of an [h, w, 3] image: out [count_h * count_w, patch * patch * 3], each
// patch in (row, col, channel) order, zero outside the image. pad_* = SAME padding before.
void extract_patches(const float* image, int h, int w, int patch, int count_h, int count_w,
                     int pad_top, int pad_left, float* out);

// Convolution of `shape` (base/conv2d_shape.h), no bias, stride <= kernel. `columns` is
// scratch of shape.positions() * shape.window() floats (as the GPU's im2col needs; the CPU
// holds the padded input there, which is no larger); unused for a pointwise shape.
void conv2d(const float* in, const Conv2dShape& shape, const float* kernel, float* columns,
            float* out);
// conv2d() with the kernel, read as [window, out_channels], packed once by pack_columns
// (cpu/gemm.h), as the CPU model packs its stem's kernels when it loads.
void conv2d_packed(const float* in, const Conv2dShape& shape, const float* packed_kernel,
                   float* columns, float* out, Precision precision = Precision::kFp32);

// In place: GroupNorm over (H*W, channels of a group) per image, then per-channel
// scale/bias, then ReLU if `relu`. x [n, hw, c].
void group_norm(float* x, int n, int hw, int c, int groups, const float* scale,
                const float* bias, float eps, bool relu);

// 3x3 max pool, stride 2, SAME padding (0 before, 1 after for even sizes). in [n,h,w,c].
void max_pool_3x3_s2(const float* in, int n, int h, int w, int c, int out_h, int out_w,
                     float* out);

// out[i] = round_for_products(p, in[i]) (base/precision.h), count elements; out may be in.
void round_product_inputs(Precision p, const float* in, int64_t count, float* out);

// x = relu(x + residual), count elements.
void add_relu(float* x, const float* residual, int64_t count);

// out[m, n] = epilogue(a[m, k] @ b[k, n] + bias[n]); for kBiasResidual, out += result
// (out holds the residual on entry).
void linear(const float* a, int64_t m, int k, const float* b, int n, const float* bias,
            Epilogue epilogue, float* out);
// linear() with b packed once by pack_columns (cpu/gemm.h), as the CPU model packs its
// Dense kernels when it loads.
void linear_packed(const float* a, int64_t m, int k, const float* packed_b, int n,
                   const float* bias, Epilogue epilogue, float* out,
                   Precision precision = Precision::kFp32);

// linear_packed() under bf16 with b packed by bf16::pack (cpu/bf16_gemm.h), on the CPU's
// bf16 kernel (where bf16::tiled()).
void linear_bf16(const float* a, int64_t m, int k, const uint16_t* packed_b, int n,
                const float* bias, Epilogue epilogue, float* out);

// Row-wise LayerNorm over `dim`, biased variance.
void layer_norm(const float* x, int64_t rows, int dim, const float* scale, const float* bias,
                float eps, float* out);

// x[i] += pos_table[spatial[i]] + scale_table[scale_id[i]], x [rows, dim].
void add_embeddings(float* x, int64_t rows, int dim, const int32_t* spatial,
                    const int32_t* scale_id, const float* pos_table, const float* scale_table);

// Multi-head self-attention without a mask (padding tokens are dropped beforehand) over
// packed sequences: sequence s is rows [seq_starts[s], seq_starts[s + 1]) of
// qkv [rows, 3 * heads * head_dim] (q | k | v, each head-major) and attends only to itself.
// Each sequence is computed exactly as it would be alone. Holds one block of the score
// matrix per thread.
void attention(const float* qkv, const int64_t* seq_starts, int sequences, int heads,
               int head_dim, Queries queries, float* out, Precision precision = Precision::kFp32);

// Quality score from the head's logits: the logit itself for one class, else the
// mean of the softmax over classes 1..C.
float head_score(const float* logits, int num_classes);

}  // namespace musiq::cpu
