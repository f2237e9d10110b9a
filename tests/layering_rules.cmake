# The layers point one way (docs/developers.md, "Layout"), checked on the sources' #include "..."
# lines. Run with cmake -P -DSOURCE_DIR=...
#  - each library folder includes only itself and the folders below it: base/ nothing else;
#    cpu/ and weights/ base/; kernels/ base/ and cpu/ (never engine/);
#  - the CLI (tools/musiq/) includes only its own headers, the public API (engine/musiq.h,
#    engine/pipeline.h) and the developer API (engine/developer.h).
set(allowed_base "base/")
set(allowed_cpu "base/|cpu/")
set(allowed_weights "base/|weights/")
set(allowed_kernels "base/|cpu/|kernels/")
set(allowed_tools/musiq "tools/musiq/|engine/musiq\\.h$|engine/pipeline\\.h$|engine/developer\\.h$")
set(problems "")
set(count 0)
foreach(folder base cpu weights kernels tools/musiq)
  file(GLOB_RECURSE sources ${SOURCE_DIR}/${folder}/*.cc ${SOURCE_DIR}/${folder}/*.h
    ${SOURCE_DIR}/${folder}/*.cu ${SOURCE_DIR}/${folder}/*.cuh)
  list(LENGTH sources n_sources)
  if(n_sources EQUAL 0)
    message(FATAL_ERROR "no sources under ${SOURCE_DIR}/${folder}")
  endif()
  math(EXPR count "${count} + ${n_sources}")
  foreach(file ${sources})
    file(STRINGS ${file} includes REGEX "^ *# *include *\"")
    foreach(line IN LISTS includes)
      string(REGEX REPLACE "^ *# *include *\"([^\"]*)\".*" "\\1" included "${line}")
      if(NOT included MATCHES "^(${allowed_${folder}})")
        file(RELATIVE_PATH shown ${SOURCE_DIR} ${file})
        string(APPEND problems "\n${shown}: includes \"${included}\"")
      endif()
    endforeach()
  endforeach()
endforeach()
if(problems)
  message(FATAL_ERROR "layering rules broken:${problems}")
endif()
message("checked ${count} files")
