// --target-size: the resize against TensorFlow itself (tests/fixtures/tf_target_size, made
// by tools/tf-target-size-fixtures), and what it does to the image the model scores.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "base/resize_plan.h"
#include "cpu/ops.h"
#include "engine/musiq.h"
#include "engine/preprocess/target_size.h"
#include "tests/test_util.h"
#include "weights/hdf5_file.h"

namespace musiq {
namespace {

const std::string kFixture = "tests/fixtures/tf_target_size/target_size.h5";

// tools/tf-target-size-fixtures' pattern_value: a pseudo-random byte per flat index.
Image pattern_image(int h, int w, int salt) {
  Image image;
  image.width = w;
  image.height = h;
  image.rgb.resize(size_t(h) * w * 3);
  for (size_t i = 0; i < image.rgb.size(); ++i)
    image.rgb[i] = static_cast<uint8_t>((((i + uint64_t(salt) * 7919) * 2654435761ull) %
                                         (uint64_t{1} << 32)) >> 24);
  return image;
}

// The float result, before the rounding to 8 bits, as resize_to_target computes it.
std::vector<float> resized_floats(const Image& image, int out_h, int out_w) {
  const std::vector<float> in(image.rgb.begin(), image.rgb.end());
  std::vector<float> tmp(size_t(out_h) * image.width * 3), out(size_t(out_h) * out_w * 3);
  cpu::gaussian_resize(in.data(), image.height, image.width, 3,
                       bilinear_antialias_resize_plan(image.height, out_h),
                       bilinear_antialias_resize_plan(image.width, out_w), tmp.data(),
                       out.data());
  return out;
}

std::vector<uint8_t> fnv1a64_bytes(const std::vector<uint8_t>& bytes) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (uint8_t b : bytes) {
    h ^= b;
    h *= 0x100000001b3ull;
  }
  std::vector<uint8_t> out(8);
  for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(h >> (56 - 8 * i));
  return out;
}

// Same taps, same float32 weights, same order of sums as TensorFlow: bit-identical.
TEST(TargetSize, ResizeIsBitIdenticalToTensorFlow) {
  const Hdf5Reader f(test::source_path(kFixture));
  int cases = 0;
  for (const std::string& name : f.dataset_names()) {
    if (!name.ends_with("/case")) continue;
    const std::string group = name.substr(0, name.size() - 5);
    const std::vector<int32_t> c = f.read_int32(name);  // in_h, in_w, out_h, out_w, salt
    ASSERT_EQ(c.size(), 5u) << group;
    const Image image = pattern_image(c[0], c[1], c[4]);
    const std::string what = group + ": " + std::to_string(c[1]) + "x" + std::to_string(c[0]) +
                             " -> " + std::to_string(c[3]) + "x" + std::to_string(c[2]);
    EXPECT_TRUE(test::all_equal(resized_floats(image, c[2], c[3]),
                                f.read_floats(group + "/resized")))
        << what;
    const Image resized = resize_to_target(image, {c[3], c[2]});
    EXPECT_EQ(resized.width, c[3]) << what;
    EXPECT_EQ(resized.height, c[2]) << what;
    EXPECT_EQ(resized.rgb, f.read_uint8(group + "/resized_uint8")) << what;
    ++cases;
  }
  EXPECT_EQ(cases, 36);
}

TEST(TargetSize, PhotoResizeIsBitIdenticalToTensorFlow) {
  const Hdf5Reader f(test::source_path(kFixture));
  const Image photo = load_image_file(test::source_path(f.string_attribute("photo")));
  int sizes = 0;
  for (const std::string& name : f.dataset_names()) {
    if (!name.ends_with("/size")) continue;
    const std::string group = name.substr(0, name.size() - 5);
    const std::vector<int32_t> size = f.read_int32(name);  // out_h, out_w
    const Image resized = resize_to_target(photo, {size[1], size[0]});
    const std::vector<float> floats = resized_floats(photo, size[0], size[1]);
    const std::vector<std::string> held = f.dataset_names();
    if (std::find(held.begin(), held.end(), group + "/resized") != held.end()) {
      EXPECT_TRUE(test::all_equal(floats, f.read_floats(group + "/resized"))) << group;
      EXPECT_EQ(resized.rgb, f.read_uint8(group + "/resized_uint8")) << group;
    } else {
      EXPECT_EQ(fnv1a64_bytes(resized.rgb), f.read_uint8(group + "/resized_uint8_fnv1a64"))
          << group;
      double sum = 0;
      for (float v : floats) sum += v;
      EXPECT_NEAR(sum, f.read_doubles(group + "/resized_sum")[0], 1e-9 * std::abs(sum))
          << group;
    }
    ++sizes;
  }
  EXPECT_EQ(sizes, 3);
}

// The triangle's plan: its span grows with the downscale factor, each row's weights sum
// to 1, and an unchanged size is the identity.
TEST(TargetSize, PlanWidensWithTheDownscaleAndKeepsTheIdentity) {
  EXPECT_EQ(bilinear_antialias_resize_plan(4032, 512).span, 2 * 8 + 1);
  EXPECT_EQ(bilinear_antialias_resize_plan(100, 300).span, 3);
  EXPECT_EQ(bilinear_antialias_resize_plan(2, 1).span, 2);
  const ResizePlan plan = bilinear_antialias_resize_plan(1000, 333);
  for (int x = 0; x < plan.out_size; ++x) {
    double sum = 0;
    for (int t = 0; t < plan.span; ++t) sum += plan.weights[size_t(x) * plan.span + t];
    ASSERT_NEAR(sum, 1.0, 1e-6) << "output " << x;
  }
  const Image image = pattern_image(41, 67, 5);
  EXPECT_EQ(resize_to_target(image, {67, 41}).rgb, image.rgb);
}

TEST(TargetSize, RefusesASideUnderOnePixel) {
  EXPECT_NO_THROW(check_target_size({}));
  EXPECT_THROW(check_target_size({0, 5}), Error);
  EXPECT_THROW(check_target_size({-3, 5}), Error);
  EXPECT_THROW(resize_to_target(pattern_image(4, 4, 0), {}), Error);
}

// A prepared image is the resized one: same tokens as preparing the resized pixels, and
// the size the model sees is recorded beside the decoded size.
TEST(TargetSize, PreparedImageIsScoredAtTheTargetSize) {
  const std::string model = test::small_test_model();
  ScorerParams params;
  params.weights_path = model;
  params.device = DeviceKind::kCpu;
  params.decode.target = {96, 64};
  const std::unique_ptr<Scorer> scorer = Scorer::open(params);
  const std::string photo = test::source_path("tests/data/coffee_portrait_267x400.png");
  const ScoreResult via_target = scorer->score_file(photo);
  EXPECT_EQ(via_target.width, 267);
  EXPECT_EQ(via_target.height, 400);
  EXPECT_EQ(via_target.scored_width, 96);
  EXPECT_EQ(via_target.scored_height, 64);
  const ScoreResult resized_first =
      scorer->score_image(resize_to_target(load_image_file(photo), {96, 64}));
  EXPECT_EQ(via_target.score, resized_first.score);
  EXPECT_EQ(via_target.tokens, resized_first.tokens);
  ScorerParams native = params;
  native.decode.target = {};
  EXPECT_NE(Scorer::open(native)->score_file(photo).score, via_target.score);
}

// The cost budget counts the tokens of the target size, not of the file.
TEST(TargetSize, TokenBudgetAppliesToTheTargetSize) {
  ScorerParams params;
  params.weights_path = test::small_test_model();
  params.device = DeviceKind::kCpu;
  params.decode.max_tokens = 400;
  const std::string photo = test::source_path("tests/data/rocket_2401x1602_q85.jpg");
  EXPECT_THROW(Scorer::open(params)->score_file(photo), Error);
  params.decode.target = {160, 120};
  EXPECT_NO_THROW(Scorer::open(params)->score_file(photo));
  params.decode.target = {4000, 3000};
  EXPECT_THROW(Scorer::open(params)->score_file(photo), Error);
}

}  // namespace
}  // namespace musiq
