// The host side of a kernel launch. tests/cuda_emulator/rewrite_cuda_source.cmake turns
//   kernel<<<grid, block, shared, stream>>>(a, b)
// into
//   kernel | ::cuda_emulator::launch_config(grid, block, shared, stream)
//          | ::cuda_emulator::launch_arguments(a, b)
// which converts the arguments to the kernel's parameter types once, checks the launch as a
// GPU would, and queues it on the stream (nothing runs before a synchronisation point).
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <functional>
#include <memory>
#include <source_location>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace cuda_emulator {

struct LaunchConfig {
  dim3 grid, block;
  size_t shared_bytes = 0;
  cudaStream_t stream = nullptr;
  std::source_location where;
};

inline LaunchConfig launch_config(dim3 grid, dim3 block, size_t shared_bytes = 0,
                                  cudaStream_t stream = nullptr,
                                  std::source_location where = std::source_location::current()) {
  return {grid, block, shared_bytes, stream, where};
}

// Checks the configuration and the pointer arguments, then queues `thread_body` (one CUDA
// thread) on the stream; a bad configuration sets the launch error cudaGetLastError reads.
void launch_kernel(const void* kernel, const LaunchConfig& config,
                   const std::vector<const void*>& pointer_arguments,
                   std::function<void()> thread_body);

template <class... Params>
struct PendingLaunch {
  void (*kernel)(Params...);
  LaunchConfig config;
};

template <class... Args>
struct LaunchArguments {
  std::tuple<Args...> values;
};

template <class... Args>
LaunchArguments<std::decay_t<Args>...> launch_arguments(Args&&... args) {
  return {std::tuple<std::decay_t<Args>...>(std::forward<Args>(args)...)};
}

template <class... Params>
PendingLaunch<Params...> operator|(void (*kernel)(Params...), const LaunchConfig& config) {
  return {kernel, config};
}

template <class... Params, class... Args>
void operator|(const PendingLaunch<Params...>& launch, LaunchArguments<Args...>&& arguments) {
  static_assert(sizeof...(Params) == sizeof...(Args), "a kernel launched with the wrong arity");
  using Values = std::tuple<std::decay_t<Params>...>;
  auto values = std::make_shared<Values>(std::make_from_tuple<Values>(std::move(arguments.values)));
  std::vector<const void*> pointers;
  std::apply(
      [&](const auto&... v) {
        (
            [&] {
              if constexpr (std::is_pointer_v<std::decay_t<decltype(v)>>)
                pointers.push_back(static_cast<const void*>(v));
            }(),
            ...);
      },
      *values);
  launch_kernel(reinterpret_cast<const void*>(launch.kernel), launch.config, pointers,
                [kernel = launch.kernel, values] { std::apply(kernel, *values); });
}

}  // namespace cuda_emulator
