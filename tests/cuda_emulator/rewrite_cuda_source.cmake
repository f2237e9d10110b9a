# cmake -DSOURCE=x.cu -DOUTPUT=x.cu.cc -P rewrite_cuda_source.cmake
# Makes a CUDA source compile as C++ with device.h force-included: launches become calls
# (kernel_launch.h), `extern __shared__ T name[];` a pointer to the block's dynamic shared
# memory, and a static `__shared__ T name[...];` (one declarator) a thread_local variable
# that the first thread of each block to reach it poisons. Lines keep their numbers.
file(READ "${SOURCE}" text)
string(REPLACE "<<<" " | ::cuda_emulator::launch_config(" text "${text}")
string(REPLACE ">>>" ") | ::cuda_emulator::launch_arguments" text "${text}")
set(id "[A-Za-z_][A-Za-z_0-9]*")
string(REGEX REPLACE
  "extern[ \t]+__shared__[ \t]+(__align__\\([0-9]+\\)[ \t]+)?(${id}(::${id})*)[ \t]+(${id})[ \t]*\\[[ \t]*\\][ \t]*;"
  "\\2* \\4 = ::cuda_emulator::dynamic_shared<\\2>();" text "${text}")
string(REGEX REPLACE
  "__shared__[ \t]+([^;\n]*[ \t*])(${id})([^;\n]*);"
  "static thread_local \\1\\2\\3; ::cuda_emulator::declare_shared(&\\2, sizeof(\\2));"
  text "${text}")
file(WRITE "${OUTPUT}" "#line 1 \"${SOURCE}\"\n${text}")
