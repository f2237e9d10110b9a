// CUDA error checks that throw musiq::Error (base/error.h) with the runtime's own
// message and the file:line of the failing call. Every kernel launch is followed by
// CUDA_CHECK_LAUNCH(), which reads cudaGetLastError(): launch-configuration errors
// surface there at once; faults inside a kernel surface at the next synchronising call.
#pragma once
#include <cuda_runtime.h>

#include <string>

#include "base/error.h"

namespace musiq::cuda {

[[noreturn]] inline void throw_cuda_error(cudaError_t status, const char* what, const char* file,
                                          int line) {
  throw Error(std::string("CUDA error ") + cudaGetErrorName(status) + " (" +
              cudaGetErrorString(status) + ") in '" + what + "' at " + file + ":" +
              std::to_string(line));
}

}  // namespace musiq::cuda

#define CUDA_CHECK(expr)                                                              \
  do {                                                                                \
    const cudaError_t musiq_cuda_status_ = (expr);                                    \
    if (musiq_cuda_status_ != cudaSuccess)                                            \
      ::musiq::cuda::throw_cuda_error(musiq_cuda_status_, #expr, __FILE__, __LINE__); \
  } while (0)

// After every <<<...>>>: reports (and clears) the launch's error, if any.
#define CUDA_CHECK_LAUNCH() CUDA_CHECK(cudaGetLastError())
