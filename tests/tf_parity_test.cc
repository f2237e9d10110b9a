// Decode and preprocessing against TensorFlow itself, through the fixtures that
// tools/tf-preprocess-parity made with the official ops (tests/fixtures/tf_preprocess).
#include <cmath>
#include <filesystem>
#include <sstream>

#include "base/resize_plan.h"
#include "cpu/ops.h"
#include "engine/preprocess/preprocess.h"
#include "tests/test_util.h"
#include "weights/hdf5_file.h"

namespace musiq {
namespace {

const std::string kFixtureDir = "tests/fixtures/tf_preprocess";

std::string fnv1a64_hex(const std::vector<uint8_t>& bytes) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (uint8_t b : bytes) {
    h ^= b;
    h *= 0x100000001b3ull;
  }
  std::ostringstream s;
  s << std::hex;
  s.width(16);
  s.fill('0');
  s << h;
  return s.str();
}

std::vector<float> resize(const std::vector<float>& in, int h, int w, int out_h, int out_w) {
  std::vector<float> tmp(size_t(out_h) * w), out(size_t(out_h) * out_w);
  cpu::gaussian_resize(in.data(), h, w, 1, gaussian_resize_plan(h, out_h),
                       gaussian_resize_plan(w, out_w), tmp.data(), out.data());
  return out;
}

// Bit-identical: same taps, same float32 weights, same accumulation order as TF.
TEST(TfParity, GaussianResizeIsBitIdenticalForEveryPair) {
  const Hdf5Reader f(test::source_path(kFixtureDir + "/gaussian_resize.h5"));
  int pairs = 0;
  for (const std::string& name : f.dataset_names()) {
    if (!name.ends_with("/row_in")) continue;
    const std::string group = name.substr(0, name.size() - 7);
    const auto in_shape = f.dataset_shape(group + "/row_in");
    const auto out_shape = f.dataset_shape(group + "/row_out");
    const int in = int(in_shape[0]), out = int(out_shape[0]);
    EXPECT_TRUE(test::all_close(resize(f.read_floats(group + "/row_in"), in, 2, out, 2),
                                f.read_floats(group + "/row_out"), 0, 0))
        << group << " rows";
    EXPECT_TRUE(test::all_close(resize(f.read_floats(group + "/col_in"), 2, in, 2, out),
                                f.read_floats(group + "/col_out"), 0, 0))
        << group << " columns";
    ++pairs;
  }
  EXPECT_EQ(pairs, 60);
}

TEST(TfParity, HashedIndexMatchesForCounts1To700) {
  const Hdf5Reader f(test::source_path(kFixtureDir + "/hash_index.h5"));
  const auto values = f.read_int32("values");
  const auto offsets = f.read_int64("offsets");
  ASSERT_EQ(offsets.size(), 701u);
  for (int count = 1; count <= 700; ++count) {
    const std::vector<int32_t> want(values.begin() + offsets[count - 1],
                                    values.begin() + offsets[count]);
    ASSERT_EQ(hashed_axis_positions(count, 10), want) << "count " << count;
  }
}

class TfImageParity : public ::testing::TestWithParam<std::string> {};

TEST_P(TfImageParity, DecodeAndTokensMatchTensorFlow) {
  const Hdf5Reader f(test::source_path(kFixtureDir + "/" + GetParam()));
  const Image image = load_image_file(test::source_path(f.string_attribute("image")));
  ASSERT_EQ(image.height, f.int_attribute("height"));
  ASSERT_EQ(image.width, f.int_attribute("width"));

  // Pixels: bit-identical to tf.image.decode_jpeg / decode_png.
  EXPECT_EQ(fnv1a64_hex(image.rgb), f.string_attribute("pixels_fnv1a64"));
  const auto where = f.read_int32("pixel_samples");
  const auto pixel_values = f.read_uint8("pixel_values");
  int wrong_pixels = 0;
  for (size_t i = 0; i < pixel_values.size(); ++i) {
    const size_t at = (size_t(where[3 * i]) * image.width + where[3 * i + 1]) * 3 + where[3 * i + 2];
    wrong_pixels += image.rgb[at] != pixel_values[i];
  }
  EXPECT_EQ(wrong_pixels, 0);

  const Tokens tokens = make_tokens(image, ModelConfig{});
  const auto shapes = f.read_int32("scale_shapes");
  for (int s = 0; s < 2; ++s) {
    EXPECT_EQ(tokens.scales[s].height, shapes[2 * s]) << "scale " << s;
    EXPECT_EQ(tokens.scales[s].width, shapes[2 * s + 1]) << "scale " << s;
  }
  const OfficialLayout layout = to_official_layout(tokens);
  const auto spatial = f.read_floats("spatial"), scale_id = f.read_floats("scale_id");
  ASSERT_EQ(layout.count(), int64_t(spatial.size()));
  std::vector<float> our_spatial(layout.spatial.begin(), layout.spatial.end());
  std::vector<float> our_scale(layout.scale_id.begin(), layout.scale_id.end());
  EXPECT_TRUE(test::all_close(our_spatial, spatial, 0, 0)) << "spatial index";
  EXPECT_TRUE(test::all_close(our_scale, scale_id, 0, 0)) << "scale id";
  EXPECT_TRUE(test::all_close(layout.mask, f.read_floats("mask"), 0, 0)) << "mask";

  // Values: within 1e-5 absolute each (the bound); sums within 3072 times that.
  const int pv = tokens.patch_values;
  const auto sums = f.read_doubles("token_sum"), sumsq = f.read_doubles("token_sumsq");
  std::vector<float> our_sum(sums.size()), our_sumsq(sums.size()), want_sum, want_sumsq;
  for (size_t t = 0; t < sums.size(); ++t) {
    double s = 0, q = 0;
    for (int e = 0; e < pv; ++e) {
      const double v = layout.patches[t * pv + e];
      s += v;
      q += v * v;
    }
    our_sum[t] = float(s);
    our_sumsq[t] = float(q);
    want_sum.push_back(float(sums[t]));
    want_sumsq.push_back(float(sumsq[t]));
  }
  EXPECT_TRUE(test::all_close(our_sum, want_sum, pv * 1e-5, 1e-6)) << "token sums";
  EXPECT_TRUE(test::all_close(our_sumsq, want_sumsq, 2 * pv * 1e-5, 1e-6)) << "token sums of squares";
  const auto index = f.read_int32("sample_index");
  const auto want_values = f.read_floats("sample_value");
  std::vector<float> ours(want_values.size());
  for (size_t i = 0; i < ours.size(); ++i) ours[i] = layout.patches[size_t(index[2 * i]) * pv + index[2 * i + 1]];
  EXPECT_TRUE(test::all_close(ours, want_values, 1e-5, 0)) << "sampled token values";
}

std::vector<std::string> image_fixtures() {
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(test::source_path(kFixtureDir))) {
    const std::string name = entry.path().filename().string();
    if (entry.path().extension() == ".h5" && name != "hash_index.h5" && name != "gaussian_resize.h5")
      names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

INSTANTIATE_TEST_SUITE_P(Images, TfImageParity, ::testing::ValuesIn(image_fixtures()),
                         [](const auto& info) {
                           std::string n = info.param.substr(0, info.param.size() - 3);
                           for (char& c : n) c = std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
                           return n;
                         });

}  // namespace
}  // namespace musiq
