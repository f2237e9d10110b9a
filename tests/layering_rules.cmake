# The layers point one way (docs/developers.md, "Layout"), checked on the sources' #include "..."
# lines. Run with cmake -P -DSOURCE_DIR=...
# Every source file of the tree (build trees and hidden folders aside) falls under one
# folder's rule, the longest folder that holds it, and includes only what that rule allows:
#  - the libraries, each itself and the layers below it: base/ nothing else; cpu/ and
#    weights/ base/; kernels/ base/ (never cpu/: the CPU ops are its twins, not its parts);
#    engine/ all of them;
#  - the front ends only the public API (engine/musiq.h, engine/pipeline.h): the CLI
#    (tools/musiq/) also the developer API (engine/developer.h); the C API (api/) the C
#    header (include/musiq/);
#  - bench/ and fuzz/ measure and attack the layers' internals, below the front ends;
#  - tests/ anything.
# A folder with sources and no rule fails the check. Also: code tests MUSIQ_HAS_CUDA (the
# CUDA path built), never the option's name MUSIQ_WITH_CUDA, which no compile defines.
cmake_minimum_required(VERSION 3.24)  # GLOB_RECURSE does not follow links

set(public_api "engine/musiq\\.h$|engine/pipeline\\.h$")
set(rule_base "base/")
set(rule_cpu "base/|cpu/")
set(rule_weights "base/|weights/")
set(rule_kernels "base/|kernels/")
set(rule_engine "base/|cpu/|weights/|kernels/|engine/")
set(rule_include "musiq/musiq\\.h$")
set(rule_api "api/|musiq/musiq\\.h$|${public_api}")
set(rule_python "${public_api}")
set(rule_tools/musiq "tools/musiq/|engine/developer\\.h$|${public_api}")
set(rule_bench "bench/|base/|cpu/|weights/|kernels/|engine/")
set(rule_fuzz "base/|weights/|engine/|musiq/musiq\\.h$")
set(rule_tests ".")
# Longest first, so that a file finds its own folder's rule before its parent's.
set(rule_folders tools/musiq base cpu weights kernels engine include api python bench fuzz
  tests)

file(GLOB top_folders LIST_DIRECTORIES true RELATIVE ${SOURCE_DIR} ${SOURCE_DIR}/*)
set(sources "")
foreach(top IN LISTS top_folders)
  if(NOT IS_DIRECTORY ${SOURCE_DIR}/${top} OR top MATCHES "^\\." OR
     EXISTS ${SOURCE_DIR}/${top}/CMakeCache.txt)
    continue()
  endif()
  file(GLOB_RECURSE found RELATIVE ${SOURCE_DIR} ${SOURCE_DIR}/${top}/*.c
    ${SOURCE_DIR}/${top}/*.cc ${SOURCE_DIR}/${top}/*.h ${SOURCE_DIR}/${top}/*.cu
    ${SOURCE_DIR}/${top}/*.cuh)
  list(APPEND sources ${found})
endforeach()

set(problems "")
set(checked_folders "")
list(LENGTH sources count)
foreach(file IN LISTS sources)
  set(rule "")
  foreach(folder IN LISTS rule_folders)
    if(file MATCHES "^${folder}/")
      set(rule "${rule_${folder}}")
      list(APPEND checked_folders ${folder})
      break()
    endif()
  endforeach()
  if(rule STREQUAL "")
    string(APPEND problems "\n${file}: no layering rule for its folder")
    continue()
  endif()
  file(STRINGS ${SOURCE_DIR}/${file} option_tests REGEX "MUSIQ_WITH_CUDA")
  if(option_tests)
    string(APPEND problems
      "\n${file}: tests MUSIQ_WITH_CUDA, the option; MUSIQ_HAS_CUDA is the build")
  endif()
  file(STRINGS ${SOURCE_DIR}/${file} includes REGEX "^ *# *include *\"")
  foreach(line IN LISTS includes)
    string(REGEX REPLACE "^ *# *include *\"([^\"]*)\".*" "\\1" included "${line}")
    if(NOT included MATCHES "^(${rule})")
      string(APPEND problems "\n${file}: includes \"${included}\"")
    endif()
  endforeach()
endforeach()
# A rule whose folder has no sources is a rule for nothing: a renamed or a misspelt folder.
foreach(folder IN LISTS rule_folders)
  if(NOT folder IN_LIST checked_folders)
    string(APPEND problems "\n${folder}/: a layering rule, but no sources")
  endif()
endforeach()
if(problems)
  message(FATAL_ERROR "layering rules broken:${problems}")
endif()
message("checked ${count} files")
