# The Python extension musiq._native (python/native_module.cc), built by `pip install .`
# (scikit-build-core, nanobind from PyPI; pyproject.toml sets MUSIQ_PYTHON_MODULE=ON).
find_package(Python 3.9 REQUIRED COMPONENTS Interpreter Development.Module)
find_package(nanobind CONFIG REQUIRED)
nanobind_add_module(musiq_native NB_STATIC ${CMAKE_CURRENT_LIST_DIR}/native_module.cc)
set_target_properties(musiq_native PROPERTIES OUTPUT_NAME _native)
target_link_libraries(musiq_native PRIVATE musiq_engine)
# The engine's symbols (static libraries) stay inside the module.
target_link_options(musiq_native PRIVATE "LINKER:--exclude-libs,ALL")
if(MUSIQ_HAS_CUDA)
  set_property(TARGET musiq_native APPEND PROPERTY INSTALL_RPATH ${CUDAToolkit_LIBRARY_DIR})
endif()
install(TARGETS musiq_native LIBRARY DESTINATION musiq COMPONENT python)
