// The device work the GPU path queues, counted by the CUDA emulator, which sees every call:
// kernel launches, GEMM calls, copies and memsets, graph launches. Each costs a GPU ~3-5 us of
// launch overhead, so the total bounds how fast a small batch can be (bench/PROFILING.md). The bounds are the counts the engine has now: a change that adds
// launches fails here. On a real GPU nothing counts them: the tests skip.
#include <cstdint>
#include <iostream>
#include <random>
#include <vector>

#include "engine/decode/image.h"
#include "engine/model/gpu_model.h"
#include "engine/model/model_weights.h"
#include "engine/preprocess/preprocess.h"
#include "tests/gpu/gpu_test_util.h"
#include "tests/test_util.h"
#include "weights/weights.h"
#ifdef MUSIQ_CUDA_EMULATION
#include "tests/cuda_emulator/emulator.h"
#endif

namespace musiq {
namespace {

#ifdef MUSIQ_CUDA_EMULATION
// What `score` queues, printed under `what`.
template <typename Score>
cuda_emulator::WorkCounts count_work(const char* what, Score&& score) {
  const cuda_emulator::WorkCounts before = cuda_emulator::work_counts();
  score();
  const cuda_emulator::WorkCounts after = cuda_emulator::work_counts();
  const cuda_emulator::WorkCounts n{after.kernels - before.kernels, after.gemms - before.gemms,
                                    after.copies - before.copies, after.graphs - before.graphs};
  std::cout << what << ": " << n.kernels << " kernel launches, " << n.gemms << " GEMM calls, "
            << n.copies << " copies/memsets, " << n.graphs << " graph launches, " << n.total()
            << " in all\n";
  return n;
}
#endif

// One 1024x768 image, preprocessed on the device.
TEST(GpuLaunchCount, Image1024x768) {
  MUSIQ_SKIP_WITHOUT_GPU();
#ifndef MUSIQ_CUDA_EMULATION
  GTEST_SKIP() << "launches are counted by the CUDA emulator only";
#else
  const WeightsFile file = load_weights(test::full_test_model(1));
  GpuModel gpu_model(prepare_model_weights(file));
  const Image image = test::random_image(1024, 768, 79);
  const auto n = count_work("1024x768, batch 1", [&] { gpu_model.score_image(image); });
  EXPECT_LE(n.total(), 148);
  // The second time its shape comes, the forward pass is captured as a CUDA graph
  // (engine/model/forward_graphs.h); from the third on, one graph launch replaces it, and
  // what stays is the upload and the device preprocessing.
  gpu_model.score_image(image);
  const auto replay = count_work("1024x768, batch 1, replayed", [&] { gpu_model.score_image(image); });
  EXPECT_EQ(replay.graphs, 1);
  EXPECT_LE(replay.total(), 16);
#endif
}

// Four small images given as tokens: their index arrays and patches go up in one copy per
// array; the forward pass still copies each image's CLS row and embeddings apart.
TEST(GpuLaunchCount, BatchOfFourTokenInputs) {
  MUSIQ_SKIP_WITHOUT_GPU();
#ifndef MUSIQ_CUDA_EMULATION
  GTEST_SKIP() << "launches are counted by the CUDA emulator only";
#else
  const WeightsFile file = load_weights(test::full_test_model(1));
  GpuModel gpu_model(prepare_model_weights(file));
  std::vector<Tokens> tokens;
  for (unsigned i = 0; i < 4; ++i)
    tokens.push_back(make_tokens(test::random_image(40 + 8 * int(i), 33, 80 + i), file.config));
  const std::vector<GpuInput> inputs = {&tokens[0], &tokens[1], &tokens[2], &tokens[3]};
  const auto n = count_work("4 token inputs", [&] { gpu_model.score_batch(inputs); });
  EXPECT_LE(n.copies, 18);
#endif
}

}  // namespace
}  // namespace musiq
