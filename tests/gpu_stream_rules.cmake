# Rules of the CUDA host code that the tests cannot see (they synchronise the whole device
# before reading results), checked on the sources (engine/, kernels/, bench/). Run with
# cmake -P -DSOURCE_DIR=...
#  1. No cudaMemcpy / cudaMemset / cudaMemcpy2D: they run on the legacy default stream,
#     which the non-blocking streams our kernels run on do not wait for. Copy with the
#     *Async forms on the work stream (DeviceArray::upload does).
#  2. cublasSetStream only in kernels/linear.cu (set_blas_workspace): anywhere
#     else it would silently drop the workspace set with set_blas_workspace.
#  3. Every kernel launch in kernels/*.cu names its stream (its `>>>` follows `stream`): one
#     left on the legacy default stream is not ordered with the work around it.
# (tests/gpu/ may use the synchronous calls: its DeviceBuffer synchronises the device.)
file(GLOB_RECURSE sources
  ${SOURCE_DIR}/engine/*.cc ${SOURCE_DIR}/engine/*.h ${SOURCE_DIR}/kernels/*.cu
  ${SOURCE_DIR}/kernels/*.cuh ${SOURCE_DIR}/kernels/*.h ${SOURCE_DIR}/bench/*.cc
  ${SOURCE_DIR}/bench/*.h)
set(problems "")
foreach(file ${sources})
  file(STRINGS ${file} lines)
  set(n 0)
  foreach(line IN LISTS lines)
    math(EXPR n "${n} + 1")
    if(line MATCHES "^ *//")
      continue()
    endif()
    if(line MATCHES "cuda(Memcpy|Memset|Memcpy2D) *\\(")
      string(APPEND problems "\n${file}:${n}: synchronous copy on the legacy default stream")
    endif()
    if(file MATCHES "\\.cu$" AND line MATCHES ">>>" AND NOT line MATCHES "stream *>>>")
      string(APPEND problems "\n${file}:${n}: a kernel launch without the work stream")
    endif()
    if(line MATCHES "cublasSetStream *\\(" AND NOT file MATCHES "/kernels/linear\\.cu$")
      string(APPEND problems "\n${file}:${n}: cublasSetStream outside kernels/linear.cu")
    endif()
  endforeach()
endforeach()
list(LENGTH sources count)
if(count LESS 20)
  message(FATAL_ERROR "found only ${count} sources under ${SOURCE_DIR}")
endif()
if(problems)
  message(FATAL_ERROR "CUDA stream rules broken:${problems}")
endif()
message("checked ${count} files")
