// The GPU counterparts of the CPU ops in cpu/ops.h: the same names and the same argument
// order, with device pointers and a trailing stream. Every function only enqueues work on
// `stream` (no synchronisation) and throws musiq::Error when a launch fails or an argument
// is outside what the kernel supports. All tensors are float32, row-major, NHWC, like the
// CPU side, but the matrix products' inputs under bf16 (docs/precision.md), which are
// __nv_bfloat16. Host entry points only: kernels stay private to their .cu files.
#pragma once
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <memory>

#include "base/op_arguments.h"  // Epilogue, Queries: shared by both sides
#include "base/precision.h"

namespace musiq::cuda {

// A ResizePlan (base/resize_plan.h) uploaded to the device: the same fields, the arrays
// as device pointers (starts [out_size], weights [out_size * span]). Owned by the caller.
struct DeviceResizePlan {
  int in_size = 0;
  int out_size = 0;
  int span = 0;
  const int32_t* starts = nullptr;
  const float* weights = nullptr;
};

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

// kernels/elementwise.cu: out[i] = in[i] rounded to the nearest bfloat16, ties to even
// (base/precision.h's round_to_bf16), count elements.
void round_to_bf16(const float* in, int64_t count, __nv_bfloat16* out, cudaStream_t stream);

// kernels/group_norm.cu: in place GroupNorm over (H*W, channels of a group) per image, then
// per-channel scale/bias, then ReLU if `relu`. x [n, hw, c]; needs c % groups == 0 and
// c <= 1024.
void group_norm(float* x, int n, int hw, int c, int groups, const float* scale,
                const float* bias, float eps, bool relu, cudaStream_t stream);

// kernels/max_pool.cu: 3x3 max pool, stride 2, SAME padding. in [n,h,w,c], out [n,out_h,out_w,c].
void max_pool_3x3_s2(const float* in, int n, int h, int w, int c, int out_h, int out_w,
                     float* out, cudaStream_t stream);

// kernels/head.cu: the quality scores from the head's logits [rows, C], written to
// scores [rows] (device): per row the logit itself for one class, else the mean of the
// softmax over classes 1..C. (cpu::head_score takes one row and returns the float; here the
// scores stay on the device until the caller copies them.)
void head_score(const float* logits, int64_t rows, int num_classes, float* scores,
                cudaStream_t stream);

// kernels/resize.cu: separable Gaussian resize, rows (height) first into `tmp`
// [out_h, in_w, c], then columns into out [out_h, out_w, c]; bit-identical to the CPU.
void gaussian_resize(const float* in, int in_h, int in_w, int channels,
                     const DeviceResizePlan& rows, const DeviceResizePlan& cols, float* tmp,
                     float* out, cudaStream_t stream);

// kernels/patches.cu: SAME patches of an [h, w, 3] image into out [count_h * count_w,
// patch * patch * 3], (row, col, channel) order, zero outside the image; bit-identical.
void extract_patches(const float* image, int h, int w, int patch, int count_h, int count_w,
                     int pad_top, int pad_left, float* out, cudaStream_t stream);

// kernels/linear.cu: a cuBLAS handle, stream-less, CUBLAS_DEFAULT_MATH (TF32 off), pointer
// mode host, for plain cuBLAS calls (the GPU benchmarks' peak SGEMM; the model's GEMMs go
// through a GemmContext). The caller destroys it with cublasDestroy.
cublasHandle_t make_blas_handle();

// The GEMM workspace GpuModel and the GPU benchmarks give cuBLAS and cuBLASLt: NVIDIA's
// advice for Hopper (32 MiB).
inline constexpr size_t kBlasWorkspaceBytes = size_t{32} << 20;

// kernels/linear.cu: binds `blas` to `stream`, then gives it `workspace` (`bytes` of device
// memory) as its workspace, in that order: cublasSetStream resets the workspace to cuBLAS's
// default pool, which cuBLAS then allocates on the first GEMM.
void set_blas_workspace(cublasHandle_t blas, cudaStream_t stream, void* workspace, size_t bytes);

// Throws musiq::Error with cuBLAS's own status name when `status` is not success.
void check_cublas(cublasStatus_t status, const char* what);

// kernels/linear.cu: what the GEMM-backed ops (linear, conv2d) need of cuBLASLt: its handle,
// the workspace its matmuls may use (`bytes` of device memory, owned by the caller; null
// with 0), and a plan per problem (descriptors and the heuristic's algorithm), made on the
// problem's first call and kept, so that a pass repeats no heuristic query. The stream is
// an argument of every matmul: nothing to bind. Not thread-safe: one per stream.
class GemmContext {
 public:
  GemmContext(void* workspace, size_t bytes);
  ~GemmContext();
  GemmContext(const GemmContext&) = delete;
  GemmContext& operator=(const GemmContext&) = delete;

  struct Impl;
  Impl& impl() { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
};

// kernels/linear.cu: out[m, n] = epilogue(a[m, k] @ b[k, n] + bias[n]), as
// cpu::linear_packed, in one cuBLASLt matmul with the bias and GELU in its epilogue: kBias
// (bias may be null), kBiasGelu (bias may be null), kBiasResidual (out holds the residual on
// entry; the matmul accumulates into it with beta = 1 and adds the bias). Float32 sums;
// `precision` fp32 (float32 products) or tf32 (the tensor cores read a and b rounded to
// tf32); bf16 takes bfloat16 operands: linear_bf16. Needs m, n, k < 2^31.
void linear(const float* a, int64_t m, int k, const float* b, int n, const float* bias,
            Epilogue epilogue, float* out, GemmContext* gemm, cudaStream_t stream,
            Precision precision = Precision::kFp32);
// linear() under bf16, as cpu::linear_bf16: b [k, n] in bfloat16 already (the model's
// kernels, rounded once at upload); a rounded into `a_bf16` (m * k values of device
// memory) first. Float32 sums, bias and output.
void linear_bf16(const float* a, int64_t m, int k, const __nv_bfloat16* b, int n, const float* bias,
                 Epilogue epilogue, float* out, __nv_bfloat16* a_bf16, GemmContext* gemm,
                 cudaStream_t stream);
// linear_bf16() on an `a` that is bfloat16 already (conv2d_bf16's columns).
void matmul_bf16(const __nv_bfloat16* a, int64_t m, int k, const __nv_bfloat16* b, int n,
                 const float* bias, Epilogue epilogue, float* out, GemmContext* gemm,
                 cudaStream_t stream);

// kernels/conv.cu: convolution of `shape` (base/conv2d_shape.h), no bias, at `precision`
// (fp32 or tf32). A pointwise shape is one GEMM (linear), as on the CPU; any other shape
// needs `columns`, shape.positions() * shape.window() floats, as the CPU's twin does, but
// only tf32 writes them (im2col, then one GEMM): fp32 reads the windows in place
// (kernels/conv_implicit_gemm.cu).
void conv2d(const float* in, const Conv2dShape& shape, const float* kernel, float* columns,
            float* out, GemmContext* gemm, cudaStream_t stream,
            Precision precision = Precision::kFp32);
// conv2d() under bf16, as cpu::conv2d_bf16: the kernel in bfloat16 already; im2col writes
// the columns rounded to bfloat16 (a pointwise shape: its input, rounded), so `columns`
// holds shape.positions() * shape.window() bfloat16 values for every shape.
void conv2d_bf16(const float* in, const Conv2dShape& shape, const __nv_bfloat16* kernel,
                 __nv_bfloat16* columns, float* out, GemmContext* gemm, cudaStream_t stream);

// kernels/attention.cu: multi-head self-attention without a mask over packed sequences, as
// cpu::attention: seq_starts [sequences + 1] on the device, `longest` the most rows of any
// sequence (sizes the launch); qkv [rows, 3 * heads * head_dim] (q | k | v, head-major);
// out [rows, hidden] for Queries::kAll, [sequences, hidden] for kFirst. Fused, online
// softmax: never holds more than a 32 x 64 tile of scores. head_dim must be 64; qkv and out
// 16-byte aligned. kFirst splits each sequence's keys over several blocks and merges their
// partial results through `scratch`, attention_scratch_floats(sequences, heads) floats of
// device memory, at every precision; kAll does not use it (it may be null). Under bf16 and
// tf32 every rounding point is cpu::attention's at that precision; kAll then runs the
// tensor-core kernel (kernels/attention_tensor_cores.cu).
int64_t attention_scratch_floats(int sequences, int heads);
void attention(const float* qkv, const int64_t* seq_starts, int sequences, int64_t longest,
               int heads, int head_dim, Queries queries, float* scratch, float* out,
               cudaStream_t stream, Precision precision = Precision::kFp32);

}  // namespace musiq::cuda
