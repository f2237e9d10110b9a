# The small random models the CLI tests share, made once per ctest run (the fixture
# cli.test_models, tests/CMakeLists.txt) with the interpreter the tests use:
# small.h5 (one class) and small_10_classes.h5 (ten, as ava). Each is written beside its
# final name and renamed, so that a stopped run leaves no half file behind.
# Run with cmake -DPYTHON=... -DSOURCE_DIR=... -DOUTPUT_DIR=... -P
file(MAKE_DIRECTORY ${OUTPUT_DIR})
foreach(model "small;1;5" "small_10_classes;10;6")
  list(GET model 0 name)
  list(GET model 1 classes)
  list(GET model 2 seed)
  execute_process(COMMAND ${PYTHON} ${SOURCE_DIR}/tools/musiq-make-test-model
                          ${OUTPUT_DIR}/${name}.partial.h5 --seed ${seed} --size small
                          --num-classes ${classes}
                  RESULT_VARIABLE rc)
  if(rc)
    message(FATAL_ERROR "could not make ${name}.h5")
  endif()
  file(RENAME ${OUTPUT_DIR}/${name}.partial.h5 ${OUTPUT_DIR}/${name}.h5)
endforeach()
