// Kernel launches: the checks a GPU makes at launch time (the configuration and the
// dynamic shared memory against the kernel's limit, as cudaErrorInvalidConfiguration and
// cudaErrorInvalidValue through cudaGetLastError), the rule that pointer arguments name
// device memory, then the grid queued on its stream.
#include <algorithm>
#include <cstdio>
#include <mutex>
#include <string>

#include "tests/cuda_emulator/block_runner.h"
#include "tests/cuda_emulator/emulator.h"
#include "tests/cuda_emulator/kernel_launch.h"
#include "tests/cuda_emulator/settings.h"

namespace cuda_emulator {
namespace {

constexpr size_t kDefaultSharedLimit = 48 * 1024;

bool valid_configuration(const dim3& grid, const dim3& block) {
  const uint64_t threads = uint64_t{block.x} * block.y * block.z;
  return threads >= 1 && threads <= 1024 && block.x <= 1024 && block.y <= 1024 &&
         block.z <= 64 && grid.x >= 1 && grid.y >= 1 && grid.z >= 1 && grid.x <= 0x7FFFFFFFu &&
         grid.y <= 65535 && grid.z <= 65535;
}

}  // namespace

void launch_kernel(const void* kernel, const LaunchConfig& config,
                   const std::vector<const void*>& pointer_arguments,
                   std::function<void()> thread_body) {
  Emulator& emu = Emulator::get();
  std::lock_guard<std::recursive_mutex> lock(emu.mutex);
  const std::string where =
      std::string(config.where.file_name()) + ":" + std::to_string(config.where.line());
  CUstream_st* stream = emu.stream(config.stream);
  if (!stream) {
    set_last_error(cudaErrorInvalidResourceHandle);
    return;
  }
  if (!valid_configuration(config.grid, config.block)) {
    set_last_error(cudaErrorInvalidConfiguration);
    return;
  }
  const auto limit = emu.max_dynamic_shared.find(kernel);
  const size_t shared_limit = limit == emu.max_dynamic_shared.end()
                                  ? kDefaultSharedLimit
                                  : std::max(kDefaultSharedLimit, size_t(limit->second));
  if (config.shared_bytes > shared_limit) {
    set_last_error(cudaErrorInvalidValue);
    return;
  }
  for (size_t i = 0; i < pointer_arguments.size(); ++i) {
    const void* p = pointer_arguments[i];
    if (p && !emu.memory.find(p)) {
      char address[32];
      std::snprintf(address, sizeof address, "%p", p);
      violation("the kernel launched at " + where + " was given " + address +
                " (pointer argument " + std::to_string(i + 1) +
                "), which is neither device nor pinned host memory");
    }
  }
  ++emu.counts.kernels;
  KernelGrid grid{config.grid, config.block, config.shared_bytes, std::move(thread_body), where};
  emu.enqueue(stream, [grid = std::move(grid)] { run_grid(grid); });
}

}  // namespace cuda_emulator
