# `musiq score --device cuda` where no GPU can be used (no device, an old driver, or a GPU
# this build has no code for: kernels/gpu_probe.cu): exit 2 and exactly one line on stderr
# saying why. Where `musiq info` finds a usable GPU the case does not arise: the test prints
# "SKIPPED" (SKIP_REGULAR_EXPRESSION in tests/CMakeLists.txt). Run with cmake -P.
execute_process(COMMAND ${MUSIQ} info RESULT_VARIABLE rc OUTPUT_VARIABLE info)
if(rc)
  message(FATAL_ERROR "musiq info failed (exit ${rc})")
endif()
string(JSON gpu_available GET "${info}" gpu available)
if(gpu_available)
  message("SKIPPED: a usable GPU is present, so --device cuda does not fail")
  return()
endif()

set(model ${MODEL_DIR}/small.h5)  # made by the fixture test_models
execute_process(
  COMMAND ${MUSIQ} score --device cuda --weights ${model} ${SOURCE_DIR}/samples/chelsea.png
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 2)
  message(FATAL_ERROR "expected exit 2 (set-up error), got ${rc}:\n${err}")
endif()
string(STRIP "${err}" err)
string(JSON problem GET "${info}" gpu problem)
if(err MATCHES "\n" OR NOT err MATCHES "cuda" OR err STREQUAL "")
  message(FATAL_ERROR "expected one line naming --device cuda and the reason, got:\n${err}")
endif()
string(FIND "${err}" "${problem}" at)
if(at EQUAL -1)
  message(FATAL_ERROR "the error does not give the reason `musiq info` gives (${problem}):\n${err}")
endif()
if(NOT out STREQUAL "")
  message(FATAL_ERROR "nothing should be scored, got:\n${out}")
endif()
