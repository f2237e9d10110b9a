// The public Scorer on the CPU: a file, a decoded image, and an image prepared either way
// (tokens made ahead, or pixels kept for a GPU scorer) all give the same score and tokens.
// The device names it takes.
#include "engine/decode/image.h"
#include "base/error.h"
#include "engine/musiq.h"
#include "tests/test_util.h"

namespace musiq {
namespace {

TEST(Devices, EachNameIsItsKind) {
  EXPECT_EQ(parse_device_kind("auto"), DeviceKind::kAuto);
  EXPECT_EQ(parse_device_kind("cpu"), DeviceKind::kCpu);
  EXPECT_EQ(parse_device_kind("cuda"), DeviceKind::kCuda);
  for (const std::string& name : kDeviceNames) EXPECT_EQ(device_name(parse_device_kind(name)), name);
  try {
    parse_device_kind("gpu");
    ADD_FAILURE() << "parsed 'gpu'";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "unknown device 'gpu' (use auto, cpu or cuda)");
  }
}

TEST(Scorer, EveryInputPathGivesTheSameScore) {
  ScorerParams params;
  params.weights_path = test::small_test_model();
  params.device = DeviceKind::kCpu;
  const std::unique_ptr<Scorer> scorer = Scorer::open(params);
  const std::string path = test::source_path("tests/data/chelsea_200x133_q90.jpg");

  const ScoreResult from_file = scorer->score_file(path);
  EXPECT_GT(from_file.tokens, 1);
  const ScoreResult from_image = scorer->score_image(load_image_file(path));
  EXPECT_EQ(from_image.score, from_file.score);
  EXPECT_EQ(from_image.tokens, from_file.tokens);
  for (DeviceKind prepared_for : {DeviceKind::kCpu, DeviceKind::kCuda}) {
    const ScoreResult r = scorer->score_prepared(
        *prepare_image_file(path, scorer->model().config, DecodeOptions{}, prepared_for));
    EXPECT_EQ(r.score, from_file.score);
    EXPECT_EQ(r.tokens, from_file.tokens);
    EXPECT_EQ(r.width, 200);
    EXPECT_GT(r.preprocess_ms, 0.0);  // made ahead, or here from the kept pixels
    EXPECT_EQ(r.upload_ms, 0.0);
  }
}

// Broken weights (scores that overflow) give errors on every path, never inf as a score.
TEST(Scorer, NonFiniteScoreIsAnErrorOnEveryPath) {
  ScorerParams params;
  params.weights_path = test::non_finite_test_model();
  params.device = DeviceKind::kCpu;
  const std::unique_ptr<Scorer> scorer = Scorer::open(params);
  const std::string path = test::source_path("tests/data/chelsea_200x133_q90.jpg");
  EXPECT_THROW(scorer->score_file(path), Error);
  EXPECT_THROW(scorer->score_image(load_image_file(path)), Error);
  const PreparedImagePtr prepared =
      prepare_image_file(path, scorer->model().config, DecodeOptions{});
  const PreparedImage* batch[] = {prepared.get(), prepared.get()};
  for (const BatchItem& item : scorer->score_batch(batch)) {
    EXPECT_TRUE(item.non_finite);
    EXPECT_EQ(item.error, "the model gave a non-finite score (-inf); are the weights broken?");
  }
}

}  // namespace
}  // namespace musiq
