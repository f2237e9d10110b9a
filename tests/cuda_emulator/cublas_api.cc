// The cuBLAS functions the project calls, on OpenBLAS: SGEMM queued on the handle's stream
// like any other work, after cuBLAS's own argument checks (sizes, leading dimensions) and
// the rule that A, B and C lie in device memory over their whole extent. Under
// CUBLAS_TF32_TENSOR_OP_MATH the inputs are rounded to TF32 (10 mantissa bits, to nearest
// even) before the product, as tensor cores read them. cuBLAS's own summation order is not
// reproduced.
#include <cblas.h>
#include <cublas_v2.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <vector>

#include "tests/cuda_emulator/emulator.h"
#include "tests/cuda_emulator/gemm_operands.h"
#include "tests/cuda_emulator/settings.h"

struct cublasContext {
  cudaStream_t stream = nullptr;
  cublasMath_t math = CUBLAS_DEFAULT_MATH;
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
};

namespace {

using cuda_emulator::Emulator;
using Lock = std::lock_guard<std::recursive_mutex>;

CBLAS_TRANSPOSE transpose(cublasOperation_t op) {
  return op == CUBLAS_OP_N ? CblasNoTrans : CblasTrans;
}

}  // namespace

extern "C" {

cublasStatus_t cublasCreate_v2(cublasHandle_t* handle) {
  *handle = new cublasContext;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasDestroy_v2(cublasHandle_t handle) {
  if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
  delete handle;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGetProperty(libraryPropertyType type, int* value) {
  switch (type) {
    case MAJOR_VERSION: *value = CUBLAS_VER_MAJOR; return CUBLAS_STATUS_SUCCESS;
    case MINOR_VERSION: *value = CUBLAS_VER_MINOR; return CUBLAS_STATUS_SUCCESS;
    case PATCH_LEVEL: *value = CUBLAS_VER_PATCH; return CUBLAS_STATUS_SUCCESS;
    default: return CUBLAS_STATUS_INVALID_VALUE;
  }
}

// As cuBLAS documents: a new stream also drops the user's workspace.
cublasStatus_t cublasSetStream_v2(cublasHandle_t handle, cudaStream_t stream) {
  if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
  Emulator& emu = Emulator::get();
  Lock lock(emu.mutex);
  if (!emu.stream(stream)) return CUBLAS_STATUS_INVALID_VALUE;
  handle->stream = stream;
  handle->workspace = nullptr;
  handle->workspace_bytes = 0;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetWorkspace_v2(cublasHandle_t handle, void* workspace, size_t bytes) {
  if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
  Emulator& emu = Emulator::get();
  Lock lock(emu.mutex);
  if (bytes > 0 && !cuda_emulator::check_device_range("cublasSetWorkspace", workspace, bytes))
    return CUBLAS_STATUS_INVALID_VALUE;
  handle->workspace = workspace;
  handle->workspace_bytes = bytes;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode) {
  if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
  handle->math = mode;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGetMathMode(cublasHandle_t handle, cublasMath_t* mode) {
  if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
  *mode = handle->math;
  return CUBLAS_STATUS_SUCCESS;
}

const char* cublasGetStatusName(cublasStatus_t status) {
  switch (status) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    default: return "CUBLAS_STATUS_UNKNOWN";
  }
}

const char* cublasGetStatusString(cublasStatus_t status) {
  switch (status) {
    case CUBLAS_STATUS_SUCCESS: return "success";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "the library was not initialized";
    case CUBLAS_STATUS_INVALID_VALUE: return "an invalid numeric value was used as an argument";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "the GPU program failed to execute";
    default: return "unknown error";
  }
}

cublasStatus_t cublasSgemm_v2(cublasHandle_t handle, cublasOperation_t transa,
                              cublasOperation_t transb, int m, int n, int k, const float* alpha,
                              const float* A, int lda, const float* B, int ldb, const float* beta,
                              float* C, int ldc) {
  if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
  const auto valid_op = [](cublasOperation_t op) { return op == CUBLAS_OP_N || op == CUBLAS_OP_T; };
  const int a_rows = transa == CUBLAS_OP_N ? m : k, a_cols = transa == CUBLAS_OP_N ? k : m;
  const int b_rows = transb == CUBLAS_OP_N ? k : n, b_cols = transb == CUBLAS_OP_N ? n : k;
  if (!valid_op(transa) || !valid_op(transb) || m < 0 || n < 0 || k < 0 || !alpha || !beta ||
      lda < std::max(1, a_rows) || ldb < std::max(1, b_rows) || ldc < std::max(1, m))
    return CUBLAS_STATUS_INVALID_VALUE;
  if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;

  Emulator& emu = Emulator::get();
  Lock lock(emu.mutex);
  CUstream_st* stream = emu.stream(handle->stream);
  if (!stream) return CUBLAS_STATUS_EXECUTION_FAILED;
  const auto extent = [](int rows, int cols, int ld) {
    return (size_t(ld) * (cols - 1) + rows) * sizeof(float);
  };
  if (k > 0 && (!cuda_emulator::check_device_range("cublasSgemm (A)", A, extent(a_rows, a_cols, lda)) ||
                !cuda_emulator::check_device_range("cublasSgemm (B)", B, extent(b_rows, b_cols, ldb))))
    return CUBLAS_STATUS_EXECUTION_FAILED;
  if (!cuda_emulator::check_device_range("cublasSgemm (C)", C, extent(m, n, ldc)))
    return CUBLAS_STATUS_EXECUTION_FAILED;

  ++emu.counts.gemms;
  const float a = *alpha, b = *beta;  // host pointer mode: read at the call
  const bool tf32 = (handle->math & CUBLAS_TF32_TENSOR_OP_MATH) != 0;
  emu.enqueue(stream, [=] {
    const float* a_data = A;
    const float* b_data = B;
    std::shared_ptr<std::vector<float>> a_tf32, b_tf32;
    if (tf32 && k > 0) {
      a_tf32 = cuda_emulator::float_operand(A, CUDA_R_32F, a_rows, a_cols, lda, true);
      b_tf32 = cuda_emulator::float_operand(B, CUDA_R_32F, b_rows, b_cols, ldb, true);
      a_data = a_tf32->data();
      b_data = b_tf32->data();
    }
    cblas_sgemm(CblasColMajor, transpose(transa), transpose(transb), m, n, k, a, a_data, lda,
                b_data, ldb, b, C, ldc);
  });
  return CUBLAS_STATUS_SUCCESS;
}

}  // extern "C"
