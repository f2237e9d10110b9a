# The library form of musiq (included from the root CMakeLists.txt):
# - libmusiq.so (target musiq_shared): the C API, include/musiq/musiq.h, exporting only
#   musiq_* (api/libmusiq.map), with SONAME libmusiq.so.3 (MUSIQ_ABI_VERSION in the header);
# - `cmake --install` rules: header, library, the CMake package (find_package(musiq) ->
#   musiq::musiq), musiq.pc for pkg-config, and LICENSE (Apache-2.0).
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

# The SONAME's number is the header's MUSIQ_ABI_VERSION, so that the two cannot drift.
file(STRINGS ${CMAKE_SOURCE_DIR}/include/musiq/musiq.h MUSIQ_ABI_LINE
  REGEX "^#define MUSIQ_ABI_VERSION [0-9]+$")
string(REGEX REPLACE "^#define MUSIQ_ABI_VERSION " "" MUSIQ_ABI_VERSION "${MUSIQ_ABI_LINE}")
if(NOT MUSIQ_ABI_VERSION MATCHES "^[0-9]+$")
  message(FATAL_ERROR "include/musiq/musiq.h: no '#define MUSIQ_ABI_VERSION N' line")
endif()

add_library(musiq_shared SHARED ${CMAKE_CURRENT_LIST_DIR}/c_api.cc)
target_include_directories(musiq_shared PUBLIC
  $<BUILD_INTERFACE:${CMAKE_SOURCE_DIR}/include> $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
target_link_libraries(musiq_shared PRIVATE musiq_engine)
target_compile_definitions(musiq_shared PRIVATE MUSIQ_VERSION="${PROJECT_VERSION}")
target_compile_options(musiq_shared PRIVATE ${MUSIQ_WARNINGS})
target_link_options(musiq_shared PRIVATE
  "LINKER:--version-script=${CMAKE_CURRENT_LIST_DIR}/libmusiq.map" "LINKER:--no-undefined")
set_target_properties(musiq_shared PROPERTIES OUTPUT_NAME musiq EXPORT_NAME musiq
  VERSION ${PROJECT_VERSION} SOVERSION ${MUSIQ_ABI_VERSION}
  LINK_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/libmusiq.map)
if(MUSIQ_HAS_CUDA)
  # The installed library finds the CUDA runtime and cuBLAS where it was built against them.
  set_property(TARGET musiq_shared APPEND PROPERTY INSTALL_RPATH ${CUDAToolkit_LIBRARY_DIR})
endif()

# Nothing to install from a sanitizer build (its objects need the sanitizer runtime).
if(NOT MUSIQ_SANITIZE)
  install(TARGETS musiq_shared EXPORT musiqTargets COMPONENT c_api
    LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
  install(FILES ${CMAKE_SOURCE_DIR}/include/musiq/musiq.h COMPONENT c_api
    DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/musiq)
  set(MUSIQ_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/musiq)
  install(EXPORT musiqTargets NAMESPACE musiq:: DESTINATION ${MUSIQ_CMAKE_DIR} COMPONENT c_api)
  configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/musiqConfig.cmake.in
    ${CMAKE_BINARY_DIR}/musiqConfig.cmake INSTALL_DESTINATION ${MUSIQ_CMAKE_DIR})
  write_basic_package_version_file(${CMAKE_BINARY_DIR}/musiqConfigVersion.cmake
    COMPATIBILITY SameMinorVersion)
  # Relocatable: the prefix is found from where musiq.pc lies (cmake --install --prefix P).
  file(RELATIVE_PATH MUSIQ_PC_TO_PREFIX "/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/")
  string(REGEX REPLACE "/$" "" MUSIQ_PC_TO_PREFIX "${MUSIQ_PC_TO_PREFIX}")
  configure_file(${CMAKE_CURRENT_LIST_DIR}/musiq.pc.in ${CMAKE_BINARY_DIR}/musiq.pc @ONLY)
  install(FILES ${CMAKE_BINARY_DIR}/musiqConfig.cmake ${CMAKE_BINARY_DIR}/musiqConfigVersion.cmake
    DESTINATION ${MUSIQ_CMAKE_DIR} COMPONENT c_api)
  install(FILES ${CMAKE_BINARY_DIR}/musiq.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig
    COMPONENT c_api)
  install(FILES ${CMAKE_SOURCE_DIR}/LICENSE DESTINATION ${CMAKE_INSTALL_DATADIR}/licenses/musiq
    COMPONENT c_api)
endif()
