// What the emulated GEMMs (cublas_api.cc, cublaslt_api.cc) hand OpenBLAS's SGEMM when the
// hardware would not read float32 as it is: a float32 copy of a column-major matrix,
// converted from bfloat16 (exact: a bfloat16 is the high half of a float32) or rounded to
// tf32 as tensor cores read float32 under the TF32 modes (base/precision.h's round_to_tf32,
// the rule the CPU twins round by).
#pragma once
#include <library_types.h>

#include <cstdint>
#include <memory>
#include <vector>

namespace cuda_emulator {

// The `rows` x `cols` matrix at p (leading dimension ld, `type` CUDA_R_32F or CUDA_R_16BF)
// as float32, each value rounded to tf32 if `tf32`; the copy keeps the leading dimension.
std::shared_ptr<std::vector<float>> float_operand(const void* p, cudaDataType type, int64_t rows,
                                                  int64_t cols, int64_t ld, bool tf32);

}  // namespace cuda_emulator
