# The CUDA kernels of kernels/ops.cuh, added to the musiq_kernels library, and the GPU
# forward pass (engine/gpu_model.cc, host C++ built against the CUDA headers) added to
# musiq_engine. Included from the root CMakeLists.txt inside if(MUSIQ_CUDA), after
# add_library(musiq_kernels STATIC kernels/gpu_probe.cu):
#   include(kernels/kernels.cmake)
target_sources(musiq_kernels PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/attention.cu
  ${CMAKE_CURRENT_LIST_DIR}/conv.cu
  ${CMAKE_CURRENT_LIST_DIR}/elementwise.cu
  ${CMAKE_CURRENT_LIST_DIR}/group_norm.cu
  ${CMAKE_CURRENT_LIST_DIR}/head.cu
  ${CMAKE_CURRENT_LIST_DIR}/layer_norm.cu
  ${CMAKE_CURRENT_LIST_DIR}/linear.cu
  ${CMAKE_CURRENT_LIST_DIR}/max_pool.cu
  ${CMAKE_CURRENT_LIST_DIR}/normalize.cu
  ${CMAKE_CURRENT_LIST_DIR}/patches.cu
  ${CMAKE_CURRENT_LIST_DIR}/resize.cu)
# gpu_probe.cu names the architectures in its error when the device is not among them.
string(REPLACE ";" " " musiq_cuda_archs "${CMAKE_CUDA_ARCHITECTURES}")
target_compile_definitions(musiq_kernels PRIVATE MUSIQ_CUDA_ARCHITECTURES="${musiq_cuda_archs}")
# linear/conv2d: cuBLAS SGEMM. ops.cuh includes cpu/ops.h (cpu::Epilogue), hence musiq_cpu.
target_link_libraries(musiq_kernels PUBLIC CUDA::cublas musiq_cpu)
# IEEE float semantics everywhere (no --use_fast_math: the tests compare with the CPU at
# 1e-5 and several ops bit for bit); -lineinfo maps ncu / compute-sanitizer reports to
# source lines at no run-time cost; host-side warnings as for the C++ code.
target_compile_options(musiq_kernels PRIVATE
  "$<$<COMPILE_LANGUAGE:CUDA>:-lineinfo;-Xcompiler=-Wall,-Wextra>")
# GpuModel: a host translation unit (no kernels of its own), compiled by the C++ compiler
# with the CUDA runtime, cuBLAS and NVTX (header-only, nvtx3) headers. CUDA builds only;
# engine/scorer.cc includes engine/gpu_model.h (no CUDA types) under MUSIQ_WITH_CUDA.
target_sources(musiq_engine PRIVATE ${CMAKE_CURRENT_LIST_DIR}/../engine/gpu_model.cc
  ${CMAKE_CURRENT_LIST_DIR}/../engine/gpu_self_check.cc)
