// The cuBLASLt functions the project calls, on OpenBLAS: matmuls D = epilogue(alpha A B +
// beta C), column-major, queued on the stream the call names, after the checks cuBLASLt
// makes (data and compute types, layouts that agree with each other and with the
// transposes, attribute sizes, a bias for the bias epilogues, the workspace against the
// preference) and the rule that A, B, C, D and the bias lie in device memory. The types,
// the combinations the project uses and no others (C, D, the bias and the scale float32
// in each):
//   A, B float32,  CUBLAS_COMPUTE_32F            float32 products, as they are
//   A, B float32,  CUBLAS_COMPUTE_32F_FAST_TF32  A and B rounded to tf32 first, as tensor
//                                                cores read them
//   A, B bfloat16, CUBLAS_COMPUTE_32F            A and B converted to float32 (exactly)
// then OpenBLAS's SGEMM: exact products of those inputs summed in float32, as the
// hardware defines them. The epilogues are cuBLASLt's documented ones: BIAS adds
// bias[row] to every column, GELU is the tanh approximation
// 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))), applied after the bias. The algorithm
// a heuristic returns remembers the alignments it was asked for, and a matmul whose
// pointers are less aligned fails as it would on a GPU. cuBLASLt's own summation order is
// not reproduced.
#include <cblas.h>
#include <cublasLt.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <type_traits>
#include <vector>

#include "tests/cuda_emulator/emulator.h"
#include "tests/cuda_emulator/gemm_operands.h"

struct cublasLtContext {};

namespace {

using cuda_emulator::Emulator;
using Lock = std::lock_guard<std::recursive_mutex>;

struct Layout {
  cudaDataType type;
  uint64_t rows, cols;
  int64_t ld;
};

struct MatmulDesc {
  cublasComputeType_t compute;
  cudaDataType_t scale;
  int32_t transa = CUBLAS_OP_N, transb = CUBLAS_OP_N;
  uint32_t epilogue = CUBLASLT_EPILOGUE_DEFAULT;
  const void* bias = nullptr;
};

struct Preference {
  uint64_t max_workspace = 0;
  uint32_t alignment[4] = {256, 256, 256, 256};  // A, B, C, D: cuBLASLt's defaults
};

// What cublasLtMatmulAlgo_t carries here: the alignments the heuristic assumed.
struct Algo {
  uint64_t magic;
  uint32_t alignment[4];
};
constexpr uint64_t kAlgoMagic = 0x6375424c41534c74;  // "cuBLASLt"

// The emulator's records live inside cuBLASLt's opaque structs, copied in and out.
template <typename Record, typename Opaque>
Record read(const Opaque* opaque) {
  static_assert(sizeof(Record) <= sizeof(Opaque) && std::is_trivially_copyable_v<Record>);
  Record r;
  std::memcpy(static_cast<void*>(&r), opaque, sizeof r);
  return r;
}
template <typename Record, typename Opaque>
void write(Opaque* opaque, const Record& r) {
  static_assert(sizeof(Record) <= sizeof(Opaque) && std::is_trivially_copyable_v<Record>);
  std::memcpy(opaque, &r, sizeof r);
}

// An attribute's value from `buf`, if `size` is its size (else cuBLASLt's INVALID_VALUE).
template <typename T>
bool take(const void* buf, size_t size, T* value) {
  if (!buf || size != sizeof(T)) return false;
  std::memcpy(value, buf, sizeof(T));
  return true;
}

bool has_bias(uint32_t epilogue) { return (epilogue & CUBLASLT_EPILOGUE_BIAS) != 0; }
bool has_gelu(uint32_t epilogue) { return (epilogue & CUBLASLT_EPILOGUE_GELU) != 0; }
bool supported_epilogue(uint32_t e) {
  return e == CUBLASLT_EPILOGUE_DEFAULT || e == CUBLASLT_EPILOGUE_BIAS ||
         e == CUBLASLT_EPILOGUE_GELU || e == CUBLASLT_EPILOGUE_GELU_BIAS;
}

// One of the type combinations at the top of the file.
bool supported_types(const MatmulDesc& d, const Layout& a, const Layout& b, const Layout& c,
                     const Layout& out) {
  if (c.type != CUDA_R_32F || out.type != CUDA_R_32F || a.type != b.type) return false;
  if (a.type == CUDA_R_16BF) return d.compute == CUBLAS_COMPUTE_32F;
  return a.type == CUDA_R_32F &&
         (d.compute == CUBLAS_COMPUTE_32F || d.compute == CUBLAS_COMPUTE_32F_FAST_TF32);
}

// The shapes of a matmul, if its descriptors agree: op(A) [m, k], op(B) [k, n], C and D
// [m, n], every leading dimension at least its rows, the types supported.
struct Shape {
  int64_t m, n, k;
};
bool shape_of(const MatmulDesc& d, const Layout& a, const Layout& b, const Layout& c,
              const Layout& out, Shape* s) {
  if (!supported_types(d, a, b, c, out)) return false;
  for (const Layout* l : {&a, &b, &c, &out})
    if (l->ld < int64_t(std::max<uint64_t>(1, l->rows))) return false;
  const uint64_t m = d.transa == CUBLAS_OP_N ? a.rows : a.cols;
  const uint64_t k = d.transa == CUBLAS_OP_N ? a.cols : a.rows;
  const uint64_t kb = d.transb == CUBLAS_OP_N ? b.rows : b.cols;
  const uint64_t n = d.transb == CUBLAS_OP_N ? b.cols : b.rows;
  if (k != kb || c.rows != m || c.cols != n || out.rows != m || out.cols != n) return false;
  *s = {int64_t(m), int64_t(n), int64_t(k)};
  return true;
}

bool valid_desc(const MatmulDesc& d) {
  const auto valid_op = [](int32_t op) { return op == CUBLAS_OP_N || op == CUBLAS_OP_T; };
  return d.scale == CUDA_R_32F && valid_op(d.transa) && valid_op(d.transb) &&
         supported_epilogue(d.epilogue) && (!has_bias(d.epilogue) || d.bias);
}

size_t extent_bytes(const Layout& l) {
  const size_t element = l.type == CUDA_R_16BF ? 2 : 4;
  return l.cols == 0 ? 0 : (size_t(l.ld) * (l.cols - 1) + l.rows) * element;
}

uint32_t alignment_of(const void* p) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  uint32_t bytes = 256;
  while (bytes > 1 && a % bytes) bytes /= 2;
  return bytes;
}

float gelu(float x) {
  const float kSqrt2OverPi = 0.7978845608028654f;
  return 0.5f * x * (1.0f + std::tanh(kSqrt2OverPi * (x + 0.044715f * x * x * x)));
}

}  // namespace

extern "C" {

cublasStatus_t cublasLtCreate(cublasLtHandle_t* handle) {
  if (!handle) return CUBLAS_STATUS_INVALID_VALUE;
  *handle = new cublasLtContext;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtDestroy(cublasLtHandle_t handle) {
  if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
  delete handle;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t* layout, cudaDataType type,
                                          uint64_t rows, uint64_t cols, int64_t ld) {
  if (!layout) return CUBLAS_STATUS_INVALID_VALUE;
  *layout = new cublasLtMatrixLayoutOpaque_t{};
  write(*layout, Layout{type, rows, cols, ld});
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t layout) {
  delete layout;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t* desc, cublasComputeType_t compute,
                                        cudaDataType_t scale) {
  if (!desc) return CUBLAS_STATUS_INVALID_VALUE;
  *desc = new cublasLtMatmulDescOpaque_t{};
  write(*desc, MatmulDesc{compute, scale});
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t desc) {
  delete desc;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t desc,
                                              cublasLtMatmulDescAttributes_t attr, const void* buf,
                                              size_t size) {
  if (!desc) return CUBLAS_STATUS_INVALID_VALUE;
  MatmulDesc d = read<MatmulDesc>(desc);
  bool ok = false;
  switch (attr) {
    case CUBLASLT_MATMUL_DESC_TRANSA: ok = take(buf, size, &d.transa); break;
    case CUBLASLT_MATMUL_DESC_TRANSB: ok = take(buf, size, &d.transb); break;
    case CUBLASLT_MATMUL_DESC_EPILOGUE: ok = take(buf, size, &d.epilogue); break;
    case CUBLASLT_MATMUL_DESC_BIAS_POINTER: ok = take(buf, size, &d.bias); break;
    default: return CUBLAS_STATUS_NOT_SUPPORTED;  // not emulated: add it here when needed
  }
  if (!ok) return CUBLAS_STATUS_INVALID_VALUE;
  write(desc, d);
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t* pref) {
  if (!pref) return CUBLAS_STATUS_INVALID_VALUE;
  *pref = new cublasLtMatmulPreferenceOpaque_t{};
  write(*pref, Preference{});
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t pref) {
  delete pref;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t pref,
                                                    cublasLtMatmulPreferenceAttributes_t attr,
                                                    const void* buf, size_t size) {
  if (!pref) return CUBLAS_STATUS_INVALID_VALUE;
  Preference p = read<Preference>(pref);
  bool ok = false;
  switch (attr) {
    case CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES: ok = take(buf, size, &p.max_workspace); break;
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES: ok = take(buf, size, &p.alignment[0]); break;
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES: ok = take(buf, size, &p.alignment[1]); break;
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES: ok = take(buf, size, &p.alignment[2]); break;
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES: ok = take(buf, size, &p.alignment[3]); break;
    default: return CUBLAS_STATUS_NOT_SUPPORTED;
  }
  if (!ok) return CUBLAS_STATUS_INVALID_VALUE;
  write(pref, p);
  return CUBLAS_STATUS_SUCCESS;
}

// One algorithm, needing no workspace, for every valid problem.
cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t handle, cublasLtMatmulDesc_t desc,
                                              cublasLtMatrixLayout_t a, cublasLtMatrixLayout_t b,
                                              cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t d,
                                              cublasLtMatmulPreference_t pref, int requested,
                                              cublasLtMatmulHeuristicResult_t results[],
                                              int* returned) {
  if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (!desc || !a || !b || !c || !d || !pref || requested <= 0 || !results || !returned)
    return CUBLAS_STATUS_INVALID_VALUE;
  const MatmulDesc md = read<MatmulDesc>(desc);
  Shape shape;
  if (!valid_desc(md) ||
      !shape_of(md, read<Layout>(a), read<Layout>(b), read<Layout>(c), read<Layout>(d), &shape))
    return CUBLAS_STATUS_NOT_SUPPORTED;
  const Preference p = read<Preference>(pref);
  Algo algo{kAlgoMagic, {}};
  std::copy(std::begin(p.alignment), std::end(p.alignment), algo.alignment);
  results[0] = cublasLtMatmulHeuristicResult_t{};
  write(&results[0].algo, algo);
  results[0].workspaceSize = 0;
  results[0].state = CUBLAS_STATUS_SUCCESS;
  results[0].wavesCount = 1.0f;
  *returned = 1;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmul(cublasLtHandle_t handle, cublasLtMatmulDesc_t desc, const void* alpha,
                              const void* A, cublasLtMatrixLayout_t a_desc, const void* B,
                              cublasLtMatrixLayout_t b_desc, const void* beta, const void* C,
                              cublasLtMatrixLayout_t c_desc, void* D, cublasLtMatrixLayout_t d_desc,
                              const cublasLtMatmulAlgo_t* algo, void* workspace,
                              size_t workspace_bytes, cudaStream_t handle_stream) {
  if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (!desc || !alpha || !beta || !a_desc || !b_desc || !c_desc || !d_desc || !algo)
    return CUBLAS_STATUS_INVALID_VALUE;
  const MatmulDesc md = read<MatmulDesc>(desc);
  const Layout la = read<Layout>(a_desc), lb = read<Layout>(b_desc), lc = read<Layout>(c_desc),
               ld = read<Layout>(d_desc);
  Shape s;
  if (!valid_desc(md) || !shape_of(md, la, lb, lc, ld, &s)) return CUBLAS_STATUS_NOT_SUPPORTED;
  const Algo al = read<Algo>(algo);
  if (al.magic != kAlgoMagic) return CUBLAS_STATUS_INVALID_VALUE;
  // In place (C == D) needs one layout for both, as cuBLASLt requires.
  if (C == D && (lc.ld != ld.ld)) return CUBLAS_STATUS_INVALID_VALUE;
  if (workspace_bytes > 0 && !workspace) return CUBLAS_STATUS_INVALID_VALUE;
  const void* pointers[4] = {A, B, C, D};
  for (int i = 0; i < 4; ++i)
    if (pointers[i] && alignment_of(pointers[i]) < al.alignment[i])
      return CUBLAS_STATUS_NOT_SUPPORTED;
  if (s.m == 0 || s.n == 0) return CUBLAS_STATUS_SUCCESS;
  if (s.m > INT32_MAX || s.n > INT32_MAX || s.k > INT32_MAX || la.ld > INT32_MAX ||
      lb.ld > INT32_MAX || lc.ld > INT32_MAX || ld.ld > INT32_MAX)
    return CUBLAS_STATUS_NOT_SUPPORTED;  // OpenBLAS's int sizes

  Emulator& emu = Emulator::get();
  Lock lock(emu.mutex);
  CUstream_st* stream = emu.stream(handle_stream);
  if (!stream) return CUBLAS_STATUS_EXECUTION_FAILED;
  const float a = *static_cast<const float*>(alpha), b = *static_cast<const float*>(beta);
  const bool ranges_ok =
      (s.k == 0 ||
       (cuda_emulator::check_device_range("cublasLtMatmul (A)", A, extent_bytes(la)) &&
        cuda_emulator::check_device_range("cublasLtMatmul (B)", B, extent_bytes(lb)))) &&
      (b == 0.0f || cuda_emulator::check_device_range("cublasLtMatmul (C)", C, extent_bytes(lc))) &&
      cuda_emulator::check_device_range("cublasLtMatmul (D)", D, extent_bytes(ld)) &&
      (!has_bias(md.epilogue) ||
       cuda_emulator::check_device_range("cublasLtMatmul (bias)", md.bias, s.m * sizeof(float))) &&
      (workspace_bytes == 0 ||
       cuda_emulator::check_device_range("cublasLtMatmul (workspace)", workspace, workspace_bytes));
  if (!ranges_ok) return CUBLAS_STATUS_EXECUTION_FAILED;

  ++emu.counts.gemms;
  const auto transpose = [](int32_t op) { return op == CUBLAS_OP_N ? CblasNoTrans : CblasTrans; };
  const auto* bias = static_cast<const float*>(md.bias);
  const uint32_t epilogue = md.epilogue;
  const bool tf32 = md.compute == CUBLAS_COMPUTE_32F_FAST_TF32;
  emu.enqueue(stream, [=] {
    auto* out = static_cast<float*>(D);
    const auto* c = static_cast<const float*>(C);
    const int m = int(s.m), n = int(s.n);
    if (b != 0.0f && c != out)
      for (int j = 0; j < n; ++j) std::memcpy(out + j * ld.ld, c + j * lc.ld, s.m * sizeof(float));
    // Float32 as OpenBLAS reads it: A and B as they are, or converted copies.
    const auto* a_data = static_cast<const float*>(A);
    const auto* b_data = static_cast<const float*>(B);
    std::shared_ptr<std::vector<float>> a_copy, b_copy;
    if (s.k > 0 && (tf32 || la.type != CUDA_R_32F)) {
      a_copy = cuda_emulator::float_operand(A, la.type, la.rows, la.cols, la.ld, tf32);
      b_copy = cuda_emulator::float_operand(B, lb.type, lb.rows, lb.cols, lb.ld, tf32);
      a_data = a_copy->data();
      b_data = b_copy->data();
    }
    cblas_sgemm(CblasColMajor, transpose(md.transa), transpose(md.transb), m, n, int(s.k), a,
                a_data, int(la.ld), b_data, int(lb.ld), b, out, int(ld.ld));
    for (int j = 0; j < n; ++j)
      for (int i = 0; i < m; ++i) {
        float& v = out[j * ld.ld + i];
        if (has_bias(epilogue)) v += bias[i];
        if (has_gelu(epilogue)) v = gelu(v);
      }
  });
  return CUBLAS_STATUS_SUCCESS;
}

}  // extern "C"
