// api::SharedScorer, the layer under the C API and the Python module, in-process (so the
// sanitizer build covers it): batches with bad images, every input kind, pixel checks,
// concurrent callers.
#include "api/shared_scorer.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <thread>

#include "base/error.h"
#include "engine/decode/image.h"
#include "tests/test_util.h"

namespace musiq::api {
namespace {

std::unique_ptr<SharedScorer> open_small() {
  OpenOptions options;
  options.weights = test::small_test_model();
  options.device = "cpu";
  return SharedScorer::open(options);
}

Input file(const std::string& relative) {
  Input in;
  in.name = test::source_path(relative);
  return in;
}

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

TEST(SharedScorer, BatchScoresEveryKindAsSingleCallsAndGoesPastBadImages) {
  auto scorer = open_small();
  const std::string jpeg = test::source_path("tests/data/chelsea_200x133_q90.jpg");
  const std::vector<uint8_t> bytes = read_bytes(jpeg);
  const Image decoded = load_image_file(test::source_path("samples/chelsea.png"));
  std::vector<Input> inputs{file("samples/chelsea.png"), file("no/such/file.png"), Input{},
                            Input{}, file("tests/data/camera_gray_459x371_q90.jpg")};
  inputs[2].kind = Input::Kind::kEncoded;
  inputs[2].name = "<encoded image>";
  inputs[2].encoded = bytes.data();
  inputs[2].encoded_size = bytes.size();
  inputs[3].kind = Input::Kind::kPixels;
  inputs[3].name = "<pixels>";
  inputs[3].pixels = {decoded.rgb.data(), decoded.width, decoded.height, decoded.width * 3, 3};

  for (int threads : {1, 2, 3}) {
    const std::vector<Outcome> many = scorer->score_many(inputs, threads);
    ASSERT_EQ(many.size(), inputs.size());
    for (size_t i = 0; i < inputs.size(); ++i) {
      const Outcome one = scorer->score(inputs[i]);
      EXPECT_EQ(many[i].error, one.error) << i;
      EXPECT_EQ(many[i].result.score, one.result.score) << i;
    }
    EXPECT_EQ(many[1].failure, Failure::kImage);
    EXPECT_NE(many[1].error.find("no/such/file.png: "), std::string::npos) << many[1].error;
    EXPECT_EQ(many[0].result.score, many[3].result.score);  // file == its pixels
    EXPECT_EQ(many[2].result.score, scorer->score(file("tests/data/chelsea_200x133_q90.jpg"))
                                        .result.score);  // bytes == file
  }
  EXPECT_TRUE(scorer->score_many({}, 2).empty());
}

TEST(SharedScorer, RefusesMalformedPixelsWithOneLine) {
  auto scorer = open_small();
  std::vector<uint8_t> px(64 * 48 * 4, 9);
  Input in;
  in.kind = Input::Kind::kPixels;
  in.name = "<pixels>";
  in.pixels = {px.data(), 64, 48, 64 * 2, 2};
  EXPECT_EQ(scorer->score(in).error,
            "<pixels>: 2 channels per pixel, expected 1 (gray), 3 (RGB) or 4 (RGBA)");
  in.pixels = {px.data(), 64, 48, 64 * 3 - 1, 3};
  EXPECT_NE(scorer->score(in).error.find("row stride"), std::string::npos);
  in.pixels = {px.data(), 0, 48, 64 * 3, 3};
  EXPECT_EQ(scorer->score(in).error, "<pixels>: image has no pixels (0x48)");
  in.pixels = {nullptr, 64, 48, 64 * 3, 3};
  EXPECT_EQ(scorer->score(in).error, "<pixels>: no pixel data");
  in.pixels = {px.data(), 64, 48, 64 * 4, 4};
  EXPECT_EQ(scorer->score(in).failure, Failure::kNone);
}

TEST(SharedScorer, NonFiniteScoresAreErrorsForEveryInputKind) {
  OpenOptions options;
  options.weights = test::non_finite_test_model();
  options.device = "cpu";
  auto scorer = SharedScorer::open(options);
  const Image decoded = load_image_file(test::source_path("samples/chelsea.png"));
  std::vector<Input> inputs{file("samples/chelsea.png"), Input{}};
  inputs[1].kind = Input::Kind::kPixels;
  inputs[1].name = "<pixels>";
  inputs[1].pixels = {decoded.rgb.data(), decoded.width, decoded.height, decoded.width * 3, 3};
  std::vector<Outcome> outcomes = scorer->score_many(inputs, 2);
  outcomes.push_back(scorer->score(inputs[0]));
  for (const Outcome& o : outcomes) {
    EXPECT_EQ(o.failure, Failure::kImage) << o.result.score;
    EXPECT_NE(o.error.find(": the model gave a non-finite score (-inf)"), std::string::npos)
        << o.error;
  }
  EXPECT_EQ(outcomes[0].error.rfind(inputs[0].name, 0), 0u) << outcomes[0].error;
}

// A model looked up by name must be that model, as a --weights file given with --model.
TEST(SharedScorer, ModelNameLookupRefusesAnotherVariant) {
  const std::string dir = test::temp_path("weights-dir-spaq-as-ava");
  std::filesystem::create_directories(dir);
  const std::string cmd = std::string(MUSIQ_PYTHON) +
                          " -c \"import h5py, shutil, sys; shutil.copy(sys.argv[1], sys.argv[2]); "
                          "f = h5py.File(sys.argv[2], 'r+'); f.attrs['variant'] = 'spaq'\" " +
                          test::small_test_model() + " " + dir + "/ava.h5";
  ASSERT_EQ(test::run_command(cmd), 0) << cmd;
  const char* saved = std::getenv("MUSIQ_WEIGHTS_DIR");
  const std::string restore = saved ? saved : "";
  ::setenv("MUSIQ_WEIGHTS_DIR", dir.c_str(), 1);
  OpenOptions options;
  options.model = "ava";
  options.device = "cpu";
  try {
    SharedScorer::open(options);
    ADD_FAILURE() << "opened a spaq file as ava";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), dir + "/ava.h5: holds the spaq model, not ava");
  }
  options.model = "spaq";
  std::filesystem::rename(dir + "/ava.h5", dir + "/spaq.h5");
  EXPECT_EQ(SharedScorer::open(options)->model_label(), "spaq");
  if (saved)
    ::setenv("MUSIQ_WEIGHTS_DIR", restore.c_str(), 1);
  else
    ::unsetenv("MUSIQ_WEIGHTS_DIR");
}

TEST(SharedScorer, ConcurrentCallersGetTheSingleThreadedScores) {
  auto scorer = open_small();
  const std::vector<Input> inputs{file("samples/chelsea.png"),
                                  file("tests/data/chelsea_200x133_q90.jpg")};
  const std::vector<Outcome> want = scorer->score_many(inputs, 1);
  std::vector<std::vector<Outcome>> got(3);
  std::vector<std::thread> callers;
  for (auto& g : got) callers.emplace_back([&] { g = scorer->score_many(inputs, 2); });
  for (auto& t : callers) t.join();
  for (const auto& g : got)
    for (size_t i = 0; i < inputs.size(); ++i) EXPECT_EQ(g[i].result.score, want[i].result.score);
}

}  // namespace
}  // namespace musiq::api
