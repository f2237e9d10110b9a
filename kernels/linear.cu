// linear: out[m, n] = epilogue(a[m, k] @ b[k, n] + bias[n]) as one cuBLASLt matmul, the
// epilogue fused into the GEMM's output stage (no pass of its own over `out`):
//   kBias          D = a@b (+ bias)          CUBLASLT_EPILOGUE_BIAS (DEFAULT without a bias)
//   kBiasGelu      D = gelu(a@b + bias)      CUBLASLT_EPILOGUE_GELU_BIAS (GELU without)
//   kBiasResidual  D = a@b + out + bias      BIAS with beta = 1, C = D = out
//
// Row-major through column-major cuBLASLt: a row-major [m, n] matrix is the column-major
// [n, m] matrix of its transpose, so out^T = b^T a^T is one column-major matmul with no
// transposes: A = b (n x k, ld n), B = a (k x m, ld k), C = D = out (n x m, ld n), and the
// bias, one per row of D, is bias[n] as it is stored.
//
// Precision (docs/precision.md), float32 sums in every mode:
//   fp32  A, B float32, CUBLAS_COMPUTE_32F: fp32 FFMA. The default: TF32 keeps 10 mantissa
//         bits, ~5e-4 relative error per product, far outside the 1e-4 end-to-end bound of
//         tests/gpu/gpu_model_test.cc over the 16384-long embedding products and 14 blocks.
//   tf32  A, B float32, CUBLAS_COMPUTE_32F_FAST_TF32: the tensor cores read A and B rounded
//         to tf32, then sum in float32.
//   bf16  A, B bfloat16 (CUDA_R_16BF), C, D and the bias float32, CUBLAS_COMPUTE_32F: exact
//         products of the bfloat16 inputs on the tensor cores, float32 sums. The kernels
//         come in bfloat16 (rounded once at upload). cuBLASLt takes A and B of one type, so
//         the activation is rounded too, by a pass of its own (round_to_bf16) into a scratch
//         buffer rather than by the op that produces it (LayerNorm, the GELU epilogue, the
//         attention): those stay one float32 version each at every precision, as on the
//         CPU. The pass moves 6 bytes per value of a against the GEMM's 2n flops per value
//         (n >= 384 in the model); its share of the time is unmeasured.
// Against cpu/linear.cc: the GEMM's summation order differs (~1e-6 relative,
// tests/gpu/linear_gpu_test.cc); the residual is added after the product where
// the CPU adds (r + b) first (an ulp of r); GELU is cuBLASLt's, documented as the tanh
// approximation 0.5 x (1 + tanh(...)), the CPU's x / (1 + exp(-2u)) in another form: the
// same to a few ulp where GELU is not near 0, and within ~1e-7 absolute below x = -5, where
// 1 + tanh cancels. Unmeasured on a GPU: whether cuBLASLt evaluates tanh with the fast
// hardware approximation (~2^-11 relative); tests/gpu/linear_gpu_test.cc would show it.
//
// Plans: each distinct problem (shape, precision, epilogue, beta, pointer alignments) gets
// its descriptors and the heuristic's first algorithm once; a call then sets the bias
// pointer and runs the matmul. Bound: compute, at MUSIQ's shapes ([962, 384] x [384, 1152]
// and the like).
#include <cublasLt.h>

#include <array>
#include <climits>
#include <cstdint>
#include <map>
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

// The alignment a matmul's algorithm may assume of `p`: the largest power of two up to 16
// bytes (a float4) that divides its address (2 for a bfloat16 at an odd index).
uint32_t alignment_of(const void* p) {
  const uintptr_t address = reinterpret_cast<uintptr_t>(p);
  uint32_t bytes = 16;
  while (bytes > 2 && address % bytes) bytes /= 2;
  return bytes;
}

cublasLtEpilogue_t epilogue_of(Epilogue e, bool bias) {
  if (e == Epilogue::kBiasGelu) return bias ? CUBLASLT_EPILOGUE_GELU_BIAS : CUBLASLT_EPILOGUE_GELU;
  return bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
}

// What a precision asks of cuBLASLt (the top of the file): the type of A and B, and the
// compute type; C, D, the bias and the scale type are float32 in every mode.
struct Operands {
  Precision precision;
  cudaDataType_t type;
  cublasComputeType_t compute;
};

Operands operands_for(Precision p) {
  switch (p) {
    case Precision::kFp32: return {p, CUDA_R_32F, CUBLAS_COMPUTE_32F};
    case Precision::kTf32: return {p, CUDA_R_32F, CUBLAS_COMPUTE_32F_FAST_TF32};
    case Precision::kBf16: return {p, CUDA_R_16BF, CUBLAS_COMPUTE_32F};
  }
  throw Error("linear: unknown precision");
}

}  // namespace

// One problem's descriptors and algorithm (outside the anonymous namespace: GemmContext::Impl
// holds them).
class GemmPlan {
 public:
  GemmPlan(cublasLtHandle_t lt, int64_t m, int k, int n, const Operands& operands,
           cublasLtEpilogue_t epilogue, const std::array<uint32_t, 4>& alignment, const void* bias,
           size_t workspace_bytes) {
    check_cublas(cublasLtMatmulDescCreate(&desc_, operands.compute, CUDA_R_32F),
                 "cublasLtMatmulDescCreate");
    check_cublas(cublasLtMatmulDescSetAttribute(desc_, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue,
                                                sizeof epilogue),
                 "cublasLtMatmulDescSetAttribute (epilogue)");
    set_bias(bias);  // the heuristic reads its alignment
    check_cublas(cublasLtMatrixLayoutCreate(&a_, operands.type, n, k, n),
                 "cublasLtMatrixLayoutCreate");
    check_cublas(cublasLtMatrixLayoutCreate(&b_, operands.type, k, m, k),
                 "cublasLtMatrixLayoutCreate");
    check_cublas(cublasLtMatrixLayoutCreate(&out_, CUDA_R_32F, n, m, n),
                 "cublasLtMatrixLayoutCreate");
    cublasLtMatmulPreference_t pref = nullptr;
    check_cublas(cublasLtMatmulPreferenceCreate(&pref), "cublasLtMatmulPreferenceCreate");
    const uint64_t max_workspace = workspace_bytes;
    const cublasLtMatmulPreferenceAttributes_t aligned[4] = {
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
    cublasStatus_t status = cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &max_workspace, sizeof max_workspace);
    for (int i = 0; i < 4 && status == CUBLAS_STATUS_SUCCESS; ++i)
      status = cublasLtMatmulPreferenceSetAttribute(pref, aligned[i], &alignment[i],
                                                    sizeof alignment[i]);
    cublasLtMatmulHeuristicResult_t result = {};
    int found = 0;
    if (status == CUBLAS_STATUS_SUCCESS)
      status =
          cublasLtMatmulAlgoGetHeuristic(lt, desc_, a_, b_, out_, out_, pref, 1, &result, &found);
    cublasLtMatmulPreferenceDestroy(pref);
    check_cublas(status, "cublasLtMatmulAlgoGetHeuristic");
    if (found == 0 || result.state != CUBLAS_STATUS_SUCCESS)
      throw Error("cuBLASLt has no " + precision_name(operands.precision) + " algorithm for [" +
                  std::to_string(m) + ", " + std::to_string(k) + "] x [" + std::to_string(k) +
                  ", " + std::to_string(n) + "] with epilogue " + std::to_string(int(epilogue)));
    algo_ = result.algo;
  }
  ~GemmPlan() {
    cublasLtMatrixLayoutDestroy(out_);
    cublasLtMatrixLayoutDestroy(b_);
    cublasLtMatrixLayoutDestroy(a_);
    cublasLtMatmulDescDestroy(desc_);
  }
  GemmPlan(const GemmPlan&) = delete;
  GemmPlan& operator=(const GemmPlan&) = delete;

  void set_bias(const void* bias) {
    check_cublas(cublasLtMatmulDescSetAttribute(desc_, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias,
                                                sizeof bias),
                 "cublasLtMatmulDescSetAttribute (bias)");
  }
  void run(cublasLtHandle_t lt, const void* a, const void* b, float beta, float* out,
           void* workspace, size_t workspace_bytes, cudaStream_t stream) const {
    const float alpha = 1.0f;
    check_cublas(cublasLtMatmul(lt, desc_, &alpha, b, a_, a, b_, &beta, out, out_, out, out_,
                                &algo_, workspace, workspace_bytes, stream),
                 "cublasLtMatmul (linear)");
  }

 private:
  cublasLtMatmulDesc_t desc_ = nullptr;
  cublasLtMatrixLayout_t a_ = nullptr, b_ = nullptr, out_ = nullptr;
  cublasLtMatmulAlgo_t algo_ = {};
};

// m, k, n, precision, epilogue, beta, then the alignments of a, b, out and the bias.
using GemmPlanKey = std::array<int64_t, 10>;

struct GemmContext::Impl {
  cublasLtHandle_t lt = nullptr;
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
  std::map<GemmPlanKey, std::unique_ptr<GemmPlan>> plans;
};

GemmContext::GemmContext(void* workspace, size_t bytes) : impl_(std::make_unique<Impl>()) {
  check_cublas(cublasLtCreate(&impl_->lt), "cublasLtCreate");
  impl_->workspace = workspace;
  impl_->workspace_bytes = bytes;
}

GemmContext::~GemmContext() {
  impl_->plans.clear();  // before the handle they were made with
  cublasLtDestroy(impl_->lt);
}

namespace {

// The one matmul behind linear, linear_bf16 and matmul_bf16: a and b of operands.type.
void matmul(const void* a, int64_t m, int k, const void* b, int n, const float* bias,
            Epilogue epilogue, float* out, const Operands& operands, GemmContext* gemm,
            cudaStream_t stream) {
  if (m == 0 || n == 0) return;
  if (m < 0 || m > INT_MAX || k < 0 || n < 0)
    throw Error("linear: shape [" + std::to_string(m) + ", " + std::to_string(k) + "] x [" +
                std::to_string(k) + ", " + std::to_string(n) + "] outside cuBLAS's int sizes");
  GemmContext::Impl& g = gemm->impl();
  const cublasLtEpilogue_t fused = epilogue_of(epilogue, bias != nullptr);
  const float beta = epilogue == Epilogue::kBiasResidual ? 1.0f : 0.0f;
  // A is b and B is a (see the top of the file); C is D.
  const std::array<uint32_t, 4> alignment = {alignment_of(b), alignment_of(a), alignment_of(out),
                                             alignment_of(out)};
  const GemmPlanKey key = {m,
                           k,
                           n,
                           int64_t(operands.precision),
                           int64_t(fused),
                           int64_t(beta),
                           alignment[0],
                           alignment[1],
                           alignment[2],
                           bias ? int64_t(alignment_of(bias)) : 0};
  std::unique_ptr<GemmPlan>& plan = g.plans[key];
  if (!plan)
    plan = std::make_unique<GemmPlan>(g.lt, m, k, n, operands, fused, alignment, bias,
                                      g.workspace_bytes);
  else
    plan->set_bias(bias);
  plan->run(g.lt, a, b, beta, out, g.workspace, g.workspace_bytes, stream);
}

}  // namespace

void linear(const float* a, int64_t m, int k, const float* b, int n, const float* bias,
            Epilogue epilogue, float* out, GemmContext* gemm, cudaStream_t stream,
            Precision precision) {
  if (precision == Precision::kBf16)
    throw Error("linear: bf16 takes bfloat16 kernels (cuda::linear_bf16)");
  matmul(a, m, k, b, n, bias, epilogue, out, operands_for(precision), gemm, stream);
}

void linear_bf16(const float* a, int64_t m, int k, const __nv_bfloat16* b, int n, const float* bias,
                 Epilogue epilogue, float* out, __nv_bfloat16* a_bf16, GemmContext* gemm,
                 cudaStream_t stream) {
  if (m > 0 && n > 0) round_to_bf16(a, m * k, a_bf16, stream);
  matmul_bf16(a_bf16, m, k, b, n, bias, epilogue, out, gemm, stream);
}

void matmul_bf16(const __nv_bfloat16* a, int64_t m, int k, const __nv_bfloat16* b, int n,
                 const float* bias, Epilogue epilogue, float* out, GemmContext* gemm,
                 cudaStream_t stream) {
  matmul(a, m, k, b, n, bias, epilogue, out, operands_for(Precision::kBf16), gemm, stream);
}

}  // namespace musiq::cuda
