// Token geometry for shapes the TensorFlow fixtures do not cover.
#include "engine/preprocess/preprocess.h"

#include <algorithm>

#include "tests/test_util.h"

namespace musiq {
namespace {

Image flat_image(int w, int h) {
  Image image;
  image.width = w;
  image.height = h;
  image.rgb.assign(size_t(w) * h * 3, 0);
  for (size_t i = 0; i < image.rgb.size(); ++i) image.rgb[i] = uint8_t(i * 37 % 251);
  return image;
}

TEST(Preprocess, PhotoOf1024x768Gives961Tokens) {
  const Tokens t = make_tokens(flat_image(1024, 768), ModelConfig{});
  EXPECT_EQ(t.scales[0].length + t.scales[1].length + t.scales[2].length, 49 + 144 + 768);
  EXPECT_EQ(t.count(), 42 + 108 + 768);  // 224x168: 7x6 real of 49; 384x288: 12x9 of 144
}

TEST(Preprocess, OnePixelImageScoresOnOnePatchPerScale) {
  const Tokens t = make_tokens(flat_image(1, 1), ModelConfig{});
  EXPECT_EQ(t.scales[0].height, 224);
  EXPECT_EQ(t.scales[2].tokens, 1);
  EXPECT_EQ(t.count(), 49 + 144 + 1);
}

TEST(Preprocess, ExtremeAspectNeverResizesToZero) {
  // 2x3000: the official code asks TensorFlow for a zero-width resize and fails; we keep 1.
  const Tokens t = make_tokens(flat_image(2, 3000), ModelConfig{});
  EXPECT_EQ(t.scales[0].width, 1);
  EXPECT_EQ(t.scales[0].height, 224);
  EXPECT_EQ(t.scales[2].tokens, 94);
}

TEST(Preprocess, TallNarrowPhoto728x2048) {
  const Tokens t = make_tokens(flat_image(728, 2048), ModelConfig{});
  EXPECT_EQ(t.scales[0].width, 80);
  EXPECT_EQ(t.scales[2].tokens, 23 * 64);
  for (int32_t s : t.spatial) ASSERT_LT(s, 100);
}

// A native scale with a token limit keeps its first patches in row-major order, and the
// resized scales' patches are those of the unlimited config.
TEST(Preprocess, NativeTokenLimitKeepsTheFirstPatches) {
  const Image image = flat_image(200, 130);  // native 7x5 = 35 patches
  ModelConfig limited;
  limited.max_seq_len_from_original_res = 9;
  const Tokens all = make_tokens(image, ModelConfig{});
  const Tokens cut = make_tokens(image, limited);
  ASSERT_EQ(all.scales[2].tokens, 35);
  ASSERT_EQ(cut.scales[2].tokens, 9);
  ASSERT_EQ(cut.count(), all.count() - 35 + 9);
  ASSERT_EQ(cut.patches.size(), size_t(cut.count()) * cut.patch_values);
  EXPECT_TRUE(std::equal(cut.patches.begin(), cut.patches.end(), all.patches.begin()));
}

TEST(Preprocess, ResizedShapeUsesFloat32Rounding) {
  // 204 * (224 / 768) is 59.5 exactly, but 59.499996 in float32 (TensorFlow gives 59).
  EXPECT_EQ(resized_shape(204, 768, 224), std::make_pair(59, 224));
}

}  // namespace
}  // namespace musiq
