// What a running CUDA thread of the emulator knows about itself and its block: the data
// behind threadIdx, blockIdx, blockDim, gridDim and dynamic shared memory, and the calls
// through which a thread meets the others (barrier, warp collectives). Each OS thread that
// runs blocks sets current_thread before it resumes a fiber.
#pragma once
#include <vector_types.h>

#include <cstddef>
#include <cstdint>

#include "tests/cuda_emulator/fiber.h"

namespace cuda_emulator {

class BlockRunner;

struct BlockState {
  uint3 block_idx{};
  dim3 block_dim, grid_dim;
  char* dynamic_shared = nullptr;
  BlockRunner* runner = nullptr;
};

enum class Waiting : uint8_t { kReady, kBarrier, kCollective, kExited };

// kWmma: a wmma::*_sync call (mma.h), which hands every lane lane `source`'s value, as a
// shuffle does, so that the lanes can check they agree on their arguments.
enum class Collective : uint8_t { kShuffle, kBallot, kAny, kAll, kSyncWarp, kWmma };

struct ThreadState {
  uint3 thread_idx{};
  BlockState* block = nullptr;
  int linear = 0;  // x + y * blockDim.x + z * blockDim.x * blockDim.y
  Waiting waiting = Waiting::kReady;
  Collective collective = Collective::kSyncWarp;  // the one waited for, for reports
  uint32_t collective_mask = 0;
  uint64_t collective_result = 0;
  Fiber fiber;
};

extern constinit thread_local ThreadState* current_thread;

// __syncthreads(): waits until every thread of the block has arrived.
void sync_threads();
// A warp collective of the calling lane over `mask`: returns, once every lane of the mask
// has arrived, the value of lane `source` (kShuffle, kWmma; source outside the mask is an error),
// the ballot of the lanes' predicates (kBallot), any / all of them (kAny, kAll), or 0.
uint64_t warp_collective(Collective kind, uint32_t mask, uint64_t value, int source);
// Lanes of the calling warp that have not exited.
uint32_t active_lanes();
// A static __shared__ variable of `bytes` at `p`, named by the thread that reaches its
// declaration: the first of the block to do so poisons it.
void declare_shared(void* p, size_t bytes);

}  // namespace cuda_emulator
