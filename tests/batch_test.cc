// Packed batches (engine/model/packed_batch.h) on the CPU: every image's score from a batch
// equals its single-image score within 1e-6 relative, over mixed sizes from one pixel to
// a 12 MP photo, through CpuModel and through the public Scorer::score_batch; how the
// row budget splits a batch.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "engine/decode/image.h"
#include "engine/model/cpu_model.h"
#include "engine/model/model_weights.h"
#include "engine/model/packed_batch.h"
#include "engine/musiq.h"
#include "engine/preprocess/preprocess.h"
#include "tests/test_util.h"
#include "weights/weights.h"

namespace musiq {
namespace {

constexpr double kBatchRelTol = 1e-6;

using test::random_image;

// 1x1 (every scale one padded patch), 31x33 (below a patch), a real photo, a tall
// 728x2048 (1,554 rows) and, with `twelve_mp`, a 4032x3024 photo (12,164 rows).
std::vector<Image> mixed_images(bool twelve_mp) {
  std::vector<Image> images;
  images.push_back(random_image(1, 1, 1));
  images.push_back(random_image(31, 33, 2));
  images.push_back(load_image_file(test::source_path("tests/data/chelsea_200x133_q90.jpg")));
  images.push_back(random_image(728, 2048, 3));
  if (twelve_mp) images.push_back(random_image(4032, 3024, 4));
  return images;
}

bool same_bits(float a, float b) { return std::memcmp(&a, &b, sizeof(float)) == 0; }

// The full-size model (14 blocks, head_dim 64) without the 12 MP photo, whose 12,164-token
// attention would take minutes on two cores; the small model (2 blocks, full
// stem) with it.
class CpuBatch : public ::testing::TestWithParam<bool> {};

TEST_P(CpuBatch, EqualsSinglesOverMixedSizes) {
  const bool full = GetParam();
  const WeightsFile file = load_weights(full ? test::full_test_model(1) : test::small_test_model());
  CpuModel model(prepare_model_weights(file));
  const std::vector<Image> images = mixed_images(!full);
  std::vector<Tokens> tokens;
  std::vector<const Tokens*> batch;
  for (const Image& image : images) tokens.push_back(make_tokens(image, file.config));
  for (const Tokens& t : tokens) batch.push_back(&t);
  const std::vector<float> together = model.score_batch(batch);
  ASSERT_EQ(together.size(), images.size());
  int identical = 0;
  for (size_t i = 0; i < images.size(); ++i) {
    const float single = model.score(tokens[i]);
    EXPECT_TRUE(std::isfinite(single));
    EXPECT_NEAR(together[i], single, kBatchRelTol * std::abs(single))
        << images[i].width << "x" << images[i].height;
    identical += same_bits(together[i], single);
  }
  // How many were bit-identical (the report in bench/RESULTS.md quotes it).
  RecordProperty("bit_identical", identical);
  std::printf("bit-identical to the single score: %d of %zu\n", identical, images.size());
}

INSTANTIATE_TEST_SUITE_P(Models, CpuBatch, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "full" : "small"; });

TEST(ScorerBatch, EqualsSinglesAndSplitsByRowBudget) {
  ScorerParams params;
  params.weights_path = test::small_test_model();
  params.device = DeviceKind::kCpu;
  const std::unique_ptr<Scorer> scorer = Scorer::open(params);
  params.batch_rows = 400;  // the 1x1 and 31x33 (195 and 197 rows) together, the rest alone
  const std::unique_ptr<Scorer> budgeted = Scorer::open(params);
  const ModelConfig& config = scorer->model().config;

  std::vector<PreparedImagePtr> prepared;
  for (Image& image : mixed_images(false))
    prepared.push_back(prepare_image(std::move(image), config,  // tokens, or pixels kept
                                     prepared.size() % 2 ? DeviceKind::kCpu : DeviceKind::kCuda));
  std::vector<const PreparedImage*> batch;
  for (const PreparedImagePtr& p : prepared) batch.push_back(p.get());

  const std::vector<BatchItem> together = scorer->score_batch(batch);
  const std::vector<BatchItem> split = budgeted->score_batch(batch);
  ASSERT_EQ(together.size(), batch.size());
  for (size_t i = 0; i < batch.size(); ++i) {
    ASSERT_TRUE(together[i].ok()) << together[i].error;
    ASSERT_TRUE(split[i].ok()) << split[i].error;
    const ScoreResult single = scorer->score_prepared(*batch[i]);
    EXPECT_NEAR(together[i].result.score, single.score, kBatchRelTol * std::abs(single.score));
    EXPECT_NEAR(split[i].result.score, single.score, kBatchRelTol * std::abs(single.score));
    EXPECT_EQ(together[i].result.tokens, single.tokens);
    EXPECT_EQ(together[i].result.batch_images, int(batch.size()));
    EXPECT_EQ(single.batch_images, 1);
  }
  EXPECT_EQ(split[0].result.batch_images, 2);
  EXPECT_EQ(split[2].result.batch_images, 1);
  EXPECT_EQ(split[3].result.batch_images, 1);
}

TEST(SplitBatches, ImagesAndRowsBounded) {
  const std::vector<int64_t> tokens = {3, 3, 234, 12163, 3, 3, 3};
  using Runs = std::vector<std::pair<size_t, size_t>>;
  EXPECT_EQ(split_batches(tokens, 100, 16384), (Runs{{0, 7}}));
  EXPECT_EQ(split_batches(tokens, 100, 12300), (Runs{{0, 3}, {3, 7}}));
  EXPECT_EQ(split_batches(tokens, 2, 16384), (Runs{{0, 2}, {2, 4}, {4, 6}, {6, 7}}));
  EXPECT_EQ(split_batches(tokens, 100, 100), (Runs{{0, 2}, {2, 3}, {3, 4}, {4, 7}}));
  EXPECT_EQ(split_batches(tokens, 1, 16384).size(), tokens.size());
  EXPECT_TRUE(split_batches({}, 4, 100).empty());
}

}  // namespace
}  // namespace musiq
