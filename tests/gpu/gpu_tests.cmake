# GPU kernel tests: each kernel of kernels/ops.cuh against its CPU counterpart in cpu/ops.h.
# Built only in CUDA builds; every test skips (GTEST_SKIP, with the reason) when no CUDA
# device is usable, so the suite passes on machines without a GPU.
# Included after enable_testing(), inside if(MUSIQ_HAS_CUDA), e.g. from the root CMakeLists.txt:
#   if(MUSIQ_BUILD_TESTS AND MUSIQ_HAS_CUDA)
#     include(tests/gpu/gpu_tests.cmake)
#   endif()
# Opt-in tests past 2^31 elements: MUSIQ_GPU_LARGE_TESTS=1 (tens of GB of host and GPU memory).
find_package(GTest REQUIRED)
include(GoogleTest)

add_executable(musiq_gpu_tests
  ${CMAKE_CURRENT_LIST_DIR}/attention_gpu_test.cc
  ${CMAKE_CURRENT_LIST_DIR}/conv_gpu_test.cc
  ${CMAKE_CURRENT_LIST_DIR}/elementwise_gpu_test.cc
  ${CMAKE_CURRENT_LIST_DIR}/gemm_precision_gpu_test.cc
  ${CMAKE_CURRENT_LIST_DIR}/gpu_model_test.cc
  ${CMAKE_CURRENT_LIST_DIR}/group_norm_gpu_test.cc
  ${CMAKE_CURRENT_LIST_DIR}/head_gpu_test.cc
  ${CMAKE_CURRENT_LIST_DIR}/launch_count_test.cc
  ${CMAKE_CURRENT_LIST_DIR}/layer_norm_gpu_test.cc
  ${CMAKE_CURRENT_LIST_DIR}/linear_gpu_test.cc
  ${CMAKE_CURRENT_LIST_DIR}/max_pool_gpu_test.cc
  ${CMAKE_CURRENT_LIST_DIR}/normalize_gpu_test.cc
  ${CMAKE_CURRENT_LIST_DIR}/resize_gpu_test.cc
  ${CMAKE_SOURCE_DIR}/tests/test_util.cc)
# gpu_model_test.cc: tests/test_util.cc's helpers (temp_path, run_command) and MUSIQ_PYTHON
# (tests/python_interpreter.cmake) for tools/musiq-make-test-model.
target_compile_definitions(musiq_gpu_tests PRIVATE
  MUSIQ_SOURCE_DIR="${CMAKE_SOURCE_DIR}" MUSIQ_PYTHON="${MUSIQ_PYTHON}"
  MUSIQ_TEST_TMP="${CMAKE_BINARY_DIR}/tests/gpu/tmp")
target_link_libraries(musiq_gpu_tests PRIVATE musiq_engine musiq_kernels GTest::gtest_main)
target_include_directories(musiq_gpu_tests PRIVATE ${CMAKE_SOURCE_DIR})  # tests/ helpers
if(MUSIQ_CUDA_EMULATION)  # a few cases shrink where the emulator's cost is unreasonable
  target_compile_definitions(musiq_gpu_tests PRIVATE MUSIQ_CUDA_EMULATION=1)
endif()
target_compile_options(musiq_gpu_tests PRIVATE ${MUSIQ_WARNINGS})
# PRE_TEST: list the tests when ctest runs, not at build time (the build machine may have
# no GPU and, cross-building, may not run the binary at all; listing needs no GPU anyway).
# NO_PRETTY_VALUES: the cases are named by their name generators (e.g. .../rows961_dim384),
# not by gtest's byte dump of the parameter struct. Label "gpu": ctest -L gpu runs only these.
# The tests that read cudaMemGetInfo (which counts every process on the device) run alone
# (RUN_SERIAL), so that ctest -j cannot move their measure; every other case runs in parallel.
set(MUSIQ_GPU_SERIAL_TESTS "LinearGpuWorkspace.*:*GpuLarge.*")
gtest_discover_tests(musiq_gpu_tests
  DISCOVERY_MODE PRE_TEST DISCOVERY_TIMEOUT 60 NO_PRETTY_VALUES
  TEST_FILTER "-${MUSIQ_GPU_SERIAL_TESTS}"
  PROPERTIES LABELS gpu)
gtest_discover_tests(musiq_gpu_tests
  DISCOVERY_MODE PRE_TEST DISCOVERY_TIMEOUT 60 NO_PRETTY_VALUES
  TEST_FILTER "${MUSIQ_GPU_SERIAL_TESTS}"
  PROPERTIES LABELS gpu RUN_SERIAL TRUE)
# That registration, checked without a GPU: each case once, all labelled gpu, the serial
# ones (and only they) RUN_SERIAL; ops_test.cc's CUDA rows labelled gpu too.
add_test(NAME gpu.registration
  COMMAND ${MUSIQ_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/gpu_registration_test.py
    ${CMAKE_BINARY_DIR} $<TARGET_FILE:musiq_gpu_tests> "${MUSIQ_GPU_SERIAL_TESTS}")

# The probe on a GPU the build has no code for: kernels/gpu_probe.cu again, for sm_80 SASS
# only (tests/gpu/gpu_probe_test.cc says why). The emulator has code for every build, so
# there the test skips.
if(MUSIQ_CUDA_EMULATION)
  musiq_emulated_cuda_sources(musiq_probe_sources ${CMAKE_SOURCE_DIR}/kernels/gpu_probe.cu)
  add_executable(musiq_gpu_probe_test ${CMAKE_CURRENT_LIST_DIR}/gpu_probe_test.cc
    ${musiq_probe_sources})
  target_compile_definitions(musiq_gpu_probe_test PRIVATE MUSIQ_CUDA_EMULATION=1)
  target_link_libraries(musiq_gpu_probe_test PRIVATE musiq_cuda_emulator GTest::gtest_main)
else()
  add_executable(musiq_gpu_probe_test ${CMAKE_CURRENT_LIST_DIR}/gpu_probe_test.cc
    ${CMAKE_SOURCE_DIR}/kernels/gpu_probe.cu)
  set_target_properties(musiq_gpu_probe_test PROPERTIES CUDA_ARCHITECTURES 80-real)
  target_link_libraries(musiq_gpu_probe_test PRIVATE CUDA::cudart GTest::gtest_main)
endif()
target_compile_definitions(musiq_gpu_probe_test PRIVATE MUSIQ_CUDA_ARCHITECTURES="80-real")
target_include_directories(musiq_gpu_probe_test PRIVATE ${CMAKE_SOURCE_DIR})
gtest_discover_tests(musiq_gpu_probe_test DISCOVERY_MODE PRE_TEST DISCOVERY_TIMEOUT 60
  PROPERTIES LABELS gpu)

# The emulator's own rules (tests/cuda_emulator/emulator_test.cu) and its WMMA API
# (wmma_test.cu), in emulated builds.
if(MUSIQ_CUDA_EMULATION)
  musiq_emulated_cuda_sources(musiq_emulator_test_sources
    ${CMAKE_SOURCE_DIR}/tests/cuda_emulator/emulator_test.cu
    ${CMAKE_SOURCE_DIR}/tests/cuda_emulator/wmma_test.cu)
  add_executable(musiq_cuda_emulator_test ${musiq_emulator_test_sources})
  # musiq_base: base/precision.h, which the emulated <mma.h> rounds tf32 with.
target_link_libraries(musiq_cuda_emulator_test PRIVATE musiq_cuda_emulator musiq_base GTest::gtest_main)
  gtest_discover_tests(musiq_cuda_emulator_test DISCOVERY_MODE PRE_TEST DISCOVERY_TIMEOUT 60
    PROPERTIES LABELS gpu)
endif()
