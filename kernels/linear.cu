// linear: out[m, n] = epilogue(a[m, k] @ b[k, n] + bias[n]) with cuBLAS SGEMM, then the
// epilogue kernels of kernels/elementwise.cu; the same steps, in the same order, as
// cpu/linear.cc:
//   kBias          GEMM (beta 0), then add_bias                     (skipped if bias null)
//   kBiasGelu      GEMM (beta 0), then gelu_bias
//   kBiasResidual  add_bias on out (the residual), then GEMM with beta 1: out = (r + b) + a@b
//
// Row-major through column-major cuBLAS: a row-major [m, n] matrix is the column-major
// [n, m] matrix of its transpose, so out^T = b^T a^T is one column-major SGEMM with no
// transposes: cublasSgemm(N, N, n, m, k, b, ld n, a, ld k, out, ld n).
//
// Precision: fp32 with TF32 OFF. make_blas_handle puts the handle in CUBLAS_DEFAULT_MATH,
// under which cuBLAS computes SGEMM in fp32 (TF32 tensor cores are used only when a handle
// asks for CUBLAS_TF32_TENSOR_OP_MATH; the cuBLAS docs list NVIDIA_TF32_OVERRIDE=0 as a way
// to turn TF32 off, never on). TF32 keeps 10 mantissa bits, ~5e-4 relative error per
// product; over the 16384-long embedding dot products and 14 blocks that would be far
// outside the 1e-4 end-to-end bound the GPU path is tested against (tests/gpu/
// gpu_model_test.cc). Not CUBLAS_PEDANTIC_MATH: for fp32 SGEMM it gives no extra accuracy
// we need (no TF32 either way) and may select slower kernels. Results still differ from
// OpenBLAS in summation order (cuBLAS may split k): ~1e-6 relative, bounded in
// tests/gpu/linear_gpu_test.cc.
//
// Bound: compute, at MUSIQ's shapes ([962, 384] x [384, 1152] and the like).
#include <climits>
#include <cstdint>
#include <string>

#include "base/error.h"
#include "kernels/cuda_check.h"
#include "kernels/ops.cuh"

namespace musiq::cuda {

void check_cublas(cublasStatus_t status, const char* what) {
  if (status != CUBLAS_STATUS_SUCCESS)
    throw Error(std::string("cuBLAS error ") + cublasGetStatusName(status) + " (" +
                cublasGetStatusString(status) + ") in " + what);
}

cublasHandle_t make_blas_handle() {
  cublasHandle_t handle = nullptr;
  check_cublas(cublasCreate(&handle), "cublasCreate");
  const cublasStatus_t status = cublasSetMathMode(handle, CUBLAS_DEFAULT_MATH);
  if (status != CUBLAS_STATUS_SUCCESS) {
    cublasDestroy(handle);
    check_cublas(status, "cublasSetMathMode");
  }
  return handle;
}

void set_blas_workspace(cublasHandle_t blas, cudaStream_t stream, void* workspace, size_t bytes) {
  check_cublas(cublasSetStream(blas, stream), "cublasSetStream");
  check_cublas(cublasSetWorkspace(blas, workspace, bytes), "cublasSetWorkspace");
}

namespace {

// cublasSetStream only when needed: it also resets the handle's workspace.
void bind_stream(cublasHandle_t blas, cudaStream_t stream) {
  cudaStream_t current = nullptr;
  check_cublas(cublasGetStream(blas, &current), "cublasGetStream");
  if (current != stream) check_cublas(cublasSetStream(blas, stream), "cublasSetStream");
}

}  // namespace

void linear(const float* a, int64_t m, int k, const float* b, int n, const float* bias,
            Epilogue epilogue, float* out, cublasHandle_t blas, cudaStream_t stream) {
  if (m == 0 || n == 0) return;
  if (m < 0 || m > INT_MAX || k < 0 || n < 0)
    throw Error("linear: shape [" + std::to_string(m) + ", " + std::to_string(k) + "] x [" +
                std::to_string(k) + ", " + std::to_string(n) + "] outside cuBLAS's int sizes");
  bind_stream(blas, stream);
  const bool accumulate = epilogue == Epilogue::kBiasResidual;
  if (accumulate) add_bias(out, m, n, bias, stream);  // no-op without a bias
  const float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;
  check_cublas(cublasSgemm(blas, CUBLAS_OP_N, CUBLAS_OP_N, n, static_cast<int>(m), k, &alpha, b,
                           n, a, k, &beta, out, n),
               "cublasSgemm (linear)");
  if (epilogue == Epilogue::kBias) add_bias(out, m, n, bias, stream);
  if (epilogue == Epilogue::kBiasGelu) gelu_bias(out, m, n, bias, stream);
}

}  // namespace musiq::cuda
