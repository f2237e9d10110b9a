# The CLI on bad input: one line naming the file, a non-zero exit, and the good
# images of the same run still scored. Run with cmake -P (see tests/CMakeLists.txt).
file(MAKE_DIRECTORY ${WORK_DIR})
set(model ${MODEL_DIR}/small.h5)  # made by the fixture test_models
file(WRITE ${WORK_DIR}/not_an_image.jpg "hello\n")

execute_process(
  COMMAND ${MUSIQ} score --device cpu --weights ${model} ${WORK_DIR}/missing.jpg
          ${WORK_DIR}/not_an_image.jpg ${SOURCE_DIR}/samples/chelsea.png
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 1)
  message(FATAL_ERROR "expected exit 1 (some images failed), got ${rc}")
endif()
foreach(expected "missing.jpg: cannot open file for reading"
                 "not_an_image.jpg: not a supported image")
  string(FIND "${err}" "${expected}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "stderr lacks '${expected}':\n${err}")
  endif()
endforeach()
string(FIND "${out}" "\"path\":\"${SOURCE_DIR}/samples/chelsea.png\"" at)
if(at EQUAL -1)
  message(FATAL_ERROR "the good image was not scored:\n${out}")
endif()
string(FIND "${out}" "not meaningful" at)
if(at EQUAL -1)
  message(FATAL_ERROR "random weights must be labelled:\n${out}")
endif()

# Missing weights: the message tells how to get them.
execute_process(
  COMMAND ${CMAKE_COMMAND} -E env MUSIQ_WEIGHTS_DIR=${WORK_DIR}/none XDG_CACHE_HOME=${WORK_DIR}/none
          ${MUSIQ} score --model spaq ${SOURCE_DIR}/samples/chelsea.png
  RESULT_VARIABLE rc ERROR_VARIABLE err)
string(FIND "${err}" "spaq_ckpt.npz" at)
if(rc EQUAL 0 OR at EQUAL -1)
  message(FATAL_ERROR "missing weights: expected a non-zero exit and fetch instructions:\n${err}")
endif()
string(FIND "${err}" "tools/musiq-fetch spaq" at)
if(at EQUAL -1)
  message(FATAL_ERROR "missing weights: the message should suggest tools/musiq-fetch:\n${err}")
endif()
message(STATUS "bad inputs handled")
