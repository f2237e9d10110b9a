// Runs a kernel's grid: blocks in parallel on a few OS threads, each block's threads as
// fibers on one OS thread that switch only at __syncthreads and warp collectives. Nothing
// runs in lockstep: a thread runs until it must wait, then the next ready thread in the
// configured order (forward, reverse, or shuffled every round) runs.
#pragma once
#include <vector_types.h>

#include <cstddef>
#include <functional>
#include <string>

namespace cuda_emulator {

struct KernelGrid {
  dim3 grid, block;
  size_t dynamic_shared_bytes = 0;
  std::function<void()> body;  // one CUDA thread: calls the kernel with its arguments
  std::string where;           // the launch's file:line, for reports
};

// Returns when every block has finished.
void run_grid(const KernelGrid& grid);

}  // namespace cuda_emulator
