# The CUDA kernels of kernels/ops.cuh, added to the musiq_kernels library.
# Included from the root CMakeLists.txt inside if(MUSIQ_CUDA), after
# add_library(musiq_kernels STATIC kernels/gpu_probe.cu):
#   include(kernels/kernels.cmake)
target_sources(musiq_kernels PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/elementwise.cu
  ${CMAKE_CURRENT_LIST_DIR}/group_norm.cu
  ${CMAKE_CURRENT_LIST_DIR}/head.cu
  ${CMAKE_CURRENT_LIST_DIR}/layer_norm.cu
  ${CMAKE_CURRENT_LIST_DIR}/max_pool.cu
  ${CMAKE_CURRENT_LIST_DIR}/normalize.cu)
# IEEE float semantics everywhere (no --use_fast_math: the tests compare with the CPU at
# 1e-5 and several ops bit for bit); -lineinfo maps ncu / compute-sanitizer reports to
# source lines at no run-time cost; host-side warnings as for the C++ code.
target_compile_options(musiq_kernels PRIVATE
  "$<$<COMPILE_LANGUAGE:CUDA>:-lineinfo;-Xcompiler=-Wall,-Wextra>")
