// The device work one 1024x768 image costs on the GPU path (batch of one, preprocessed on
// the device): kernel launches, GEMM calls and copies, counted by the CUDA emulator, which
// sees every call the engine queues. Each costs a GPU ~3-5 us of launch overhead without a
// CUDA graph, so the total bounds how fast a small batch can be (bench/PROFILING.md). The
// bound below is the count the forward pass has now: a change that adds launches fails here
// and says by how many. On a real GPU nothing counts them: the test skips.
#include <cstdint>
#include <iostream>
#include <random>

#include "engine/decode/image.h"
#include "engine/model/gpu_model.h"
#include "engine/model/model_weights.h"
#include "tests/gpu/gpu_test_util.h"
#include "tests/test_util.h"
#include "weights/weights.h"
#ifdef MUSIQ_CUDA_EMULATION
#include "tests/cuda_emulator/emulator.h"
#endif

namespace musiq {
namespace {

TEST(GpuLaunchCount, Image1024x768) {
  MUSIQ_SKIP_WITHOUT_GPU();
#ifndef MUSIQ_CUDA_EMULATION
  GTEST_SKIP() << "launches are counted by the CUDA emulator only";
#else
  const WeightsFile file = load_weights(test::full_test_model(1));
  GpuModel gpu_model(prepare_model_weights(file));
  Image image;
  image.width = 1024;
  image.height = 768;
  image.rgb.resize(size_t(image.width) * image.height * 3);
  std::mt19937 rng(79);
  for (uint8_t& v : image.rgb) v = static_cast<uint8_t>(rng() & 0xFF);
  const cuda_emulator::WorkCounts before = cuda_emulator::work_counts();
  gpu_model.score_image(image);
  const cuda_emulator::WorkCounts after = cuda_emulator::work_counts();
  const int64_t kernels = after.kernels - before.kernels, gemms = after.gemms - before.gemms,
                copies = after.copies - before.copies;
  std::cout << "1024x768, batch 1: " << kernels << " kernel launches, " << gemms
            << " GEMM calls, " << copies << " copies/memsets, " << kernels + gemms + copies
            << " in all\n";
  constexpr int64_t kBound = 151;
  EXPECT_LE(kernels + gemms + copies, kBound);
#endif
}

}  // namespace
}  // namespace musiq
