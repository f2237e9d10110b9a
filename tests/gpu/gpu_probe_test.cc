// probe_gpu() must refuse a GPU this build has no code for (kernels/gpu_probe.cu). This
// binary compiles gpu_probe.cu again for sm_80 SASS only, no PTX (tests/gpu/gpu_tests.cmake),
// which no GPU outside compute capability 8.x can run: on such a GPU the probe must say so
// in one line, with the rebuild flag, so that the GPU tests skip and `--device cuda` fails
// cleanly instead of every launch failing with "no kernel image is available".
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <string>

#include "engine/device.h"

namespace musiq {
namespace {

TEST(GpuProbe, RefusesAGpuTheBuildHasNoCodeFor) {
#ifdef MUSIQ_CUDA_EMULATION
  GTEST_SKIP() << "the CUDA emulator runs every build's code: it has no GPU to refuse";
#endif
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0)
    GTEST_SKIP() << "no CUDA device: nothing to probe";
  cudaDeviceProp prop{};
  ASSERT_EQ(cudaGetDeviceProperties(&prop, 0), cudaSuccess);
  if (prop.major == 8)
    GTEST_SKIP() << prop.name << " runs sm_80 code: this binary has code for it";
  const GpuProbe probe = probe_gpu();
  EXPECT_FALSE(probe.usable);
  EXPECT_NE(probe.problem.find("this build has no code for it"), std::string::npos)
      << probe.problem;
  EXPECT_NE(probe.problem.find("built for CUDA architectures 80-real"), std::string::npos)
      << probe.problem;
  EXPECT_NE(probe.problem.find("-DCMAKE_CUDA_ARCHITECTURES=" + std::to_string(prop.major) +
                               std::to_string(prop.minor)),
            std::string::npos)
      << probe.problem;
  EXPECT_EQ(probe.problem.find('\n'), std::string::npos) << probe.problem;
}

}  // namespace
}  // namespace musiq
