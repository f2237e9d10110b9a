// The scoring pipeline every front end runs (engine/pipeline.h), in-process (so the
// sanitizer build covers it): batches with bad images, every input kind, pixel checks,
// strict mode, concurrent callers, and a device failing part way. No GPU is needed: the
// failure is injected through ScoringBackend around a real CPU scorer, so this checks the
// recovery logic, not any GPU.
#include "engine/pipeline.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <thread>

#include "base/error.h"
#include "engine/decode/image.h"
#include "engine/pipeline/model_runner.h"
#include "tests/test_util.h"

namespace musiq {
namespace {

std::unique_ptr<Pipeline> open_small(bool strict = false) {
  PipelineParams params;
  params.weights = test::small_test_model();
  params.device = DeviceKind::kCpu;
  params.strict = strict;
  return Pipeline::open(params);
}

ImageSource file(const std::string& relative) {
  return ImageSource::file(test::source_path(relative));
}

ImageSource encoded(const std::vector<uint8_t>& bytes, const std::string& name) {
  return ImageSource::encoded_bytes(name, bytes.data(), bytes.size());
}

ImageSource pixels_of(const Image& image) {
  return ImageSource::in_memory(
      "<pixels>", {image.rgb.data(), image.width, image.height, image.width * 3, 3});
}

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

// A JPEG whose entropy-coded data is cut short: libjpeg fills the rest in and warns.
std::vector<uint8_t> jpeg_with_warning() {
  std::vector<uint8_t> bytes = read_bytes(test::source_path("tests/data/chelsea_200x133_q90.jpg"));
  bytes.resize(bytes.size() * 2 / 3);
  bytes.insert(bytes.end(), {0xFF, 0xD9});
  return bytes;
}

// run() over `sources` with one model: an outcome per image, kStopped where not delivered.
std::vector<Outcome> run_all(Pipeline& pipeline, const std::vector<ImageSource>& sources,
                             int threads, const std::function<bool()>& stop = {}) {
  Pipeline::Run run;
  for (const ImageSource& s : sources) run.names.push_back(s.name);
  run.load = [&](size_t i) { return pipeline.prepare(sources[i]); };
  std::vector<Outcome> outcomes(sources.size());
  for (Outcome& o : outcomes) o.failure = Failure::kStopped;
  run.deliver = [&](size_t i, const std::vector<std::optional<Outcome>>& per_model) {
    EXPECT_EQ(per_model.size(), 1u);
    outcomes[i] = *per_model.front();
  };
  run.stop = stop;
  run.threads = threads;
  pipeline.run(run);
  return outcomes;
}

TEST(Pipeline, RunScoresEveryKindAsSingleCallsAndGoesPastBadImages) {
  auto pipeline = open_small();
  const std::vector<uint8_t> bytes =
      read_bytes(test::source_path("tests/data/chelsea_200x133_q90.jpg"));
  const Image decoded = load_image_file(test::source_path("samples/chelsea.png"));
  const std::vector<ImageSource> sources{file("samples/chelsea.png"), file("no/such/file.png"),
                                         encoded(bytes, "<encoded image>"), pixels_of(decoded),
                                         file("tests/data/camera_gray_459x371_q90.jpg")};
  for (int threads : {1, 2, 3}) {
    const std::vector<Outcome> many = run_all(*pipeline, sources, threads);
    ASSERT_EQ(many.size(), sources.size());
    for (size_t i = 0; i < sources.size(); ++i) {
      const Outcome one = pipeline->score(sources[i]);
      EXPECT_EQ(many[i].error, one.error) << i;
      EXPECT_EQ(many[i].result.score, one.result.score) << i;
    }
    EXPECT_EQ(many[1].failure, Failure::kImage);
    EXPECT_NE(many[1].error.find("no/such/file.png: "), std::string::npos) << many[1].error;
    EXPECT_EQ(many[0].device, "cpu");
    EXPECT_EQ(many[0].result.score, many[3].result.score);  // file == its pixels
    EXPECT_EQ(many[2].result.score,
              pipeline->score(file("tests/data/chelsea_200x133_q90.jpg")).result.score);
  }
  EXPECT_TRUE(run_all(*pipeline, {}, 2).empty());
}

TEST(Pipeline, StopEndsTheRunBetweenPasses) {
  PipelineParams params;
  params.weights = test::small_test_model();
  params.device = DeviceKind::kCpu;
  params.batch_images = 1;
  auto pipeline = Pipeline::open(params);
  const std::vector<ImageSource> sources(4, file("tests/data/chelsea_200x133_q90.jpg"));
  int asked = 0;
  const std::vector<Outcome> outcomes = run_all(*pipeline, sources, 2, [&] { return ++asked > 2; });
  EXPECT_TRUE(outcomes[0].ok() && outcomes[1].ok());
  EXPECT_EQ(outcomes[2].failure, Failure::kStopped);
  EXPECT_EQ(outcomes[3].failure, Failure::kStopped);
}

TEST(Pipeline, DecoderWarningsReachTheOutcomeAndStrictModeRefusesThem) {
  const std::vector<uint8_t> cut = jpeg_with_warning();
  const Outcome lenient = open_small()->score(encoded(cut, "cut.jpg"));
  ASSERT_TRUE(lenient.ok()) << lenient.error;
  EXPECT_NE(lenient.result.warning.find("premature end of data segment"), std::string::npos)
      << lenient.result.warning;

  auto strict = open_small(/*strict=*/true);
  const std::vector<ImageSource> sources{encoded(cut, "cut.jpg"),
                                         file("tests/data/chelsea_200x133_q90.jpg")};
  for (const std::vector<Outcome>& outcomes :
       {run_all(*strict, sources, 2),
        std::vector<Outcome>{strict->score(sources[0]), strict->score(sources[1])}}) {
    EXPECT_EQ(outcomes[0].failure, Failure::kImage);
    EXPECT_EQ(outcomes[0].error.rfind("cut.jpg: decoder warning: ", 0), 0u) << outcomes[0].error;
    EXPECT_NE(outcomes[0].error.find("(refused by strict mode)"), std::string::npos);
    EXPECT_TRUE(outcomes[1].ok()) << outcomes[1].error;  // a clean image still scores
    EXPECT_EQ(outcomes[1].result.warning, "");
  }
}

TEST(Pipeline, RefusesMalformedPixelsWithOneLine) {
  auto pipeline = open_small();
  std::vector<uint8_t> px(64 * 48 * 4, 9);
  ImageSource in = ImageSource::in_memory("<pixels>", {px.data(), 64, 48, 64 * 2, 2});
  EXPECT_EQ(pipeline->score(in).error,
            "<pixels>: 2 channels per pixel, expected 1 (gray), 3 (RGB) or 4 (RGBA)");
  in.pixels = {px.data(), 64, 48, 64 * 3 - 1, 3};
  EXPECT_NE(pipeline->score(in).error.find("row stride"), std::string::npos);
  in.pixels = {px.data(), 0, 48, 64 * 3, 3};
  EXPECT_EQ(pipeline->score(in).error, "<pixels>: image has no pixels (0x48)");
  in.pixels = {nullptr, 64, 48, 64 * 3, 3};
  EXPECT_EQ(pipeline->score(in).error, "<pixels>: no pixel data");
  in.pixels = {px.data(), 64, 48, 64 * 4, 4};
  EXPECT_EQ(pipeline->score(in).failure, Failure::kNone);
}

TEST(Pipeline, NonFiniteScoresAreErrorsForEveryInputKind) {
  PipelineParams params;
  params.weights = test::non_finite_test_model();
  params.device = DeviceKind::kCpu;
  auto pipeline = Pipeline::open(params);
  const Image decoded = load_image_file(test::source_path("samples/chelsea.png"));
  const std::vector<ImageSource> sources{file("samples/chelsea.png"), pixels_of(decoded)};
  std::vector<Outcome> outcomes = run_all(*pipeline, sources, 2);
  outcomes.push_back(pipeline->score(sources[0]));
  for (const Outcome& o : outcomes) {
    EXPECT_EQ(o.failure, Failure::kImage) << o.result.score;
    EXPECT_NE(o.error.find(": the model gave a non-finite score (-inf)"), std::string::npos)
        << o.error;
  }
  EXPECT_EQ(outcomes[0].error.rfind(sources[0].name, 0), 0u) << outcomes[0].error;
}

// A model looked up by name must be that model, as a --weights file given with --model.
TEST(Pipeline, ModelNameLookupRefusesAnotherVariant) {
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
  PipelineParams params;
  params.models = {"ava"};
  params.device = DeviceKind::kCpu;
  try {
    Pipeline::open(params);
    ADD_FAILURE() << "opened a spaq file as ava";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), dir + "/ava.h5: holds the spaq model, not ava");
  }
  params.models = {"spaq"};
  std::filesystem::rename(dir + "/ava.h5", dir + "/spaq.h5");
  EXPECT_EQ(Pipeline::open(params)->label(), "spaq");
  if (saved)
    ::setenv("MUSIQ_WEIGHTS_DIR", restore.c_str(), 1);
  else
    ::unsetenv("MUSIQ_WEIGHTS_DIR");
}

TEST(Pipeline, ConcurrentCallersGetTheSingleThreadedScores) {
  auto pipeline = open_small();
  const std::vector<ImageSource> sources{file("samples/chelsea.png"),
                                         file("tests/data/chelsea_200x133_q90.jpg")};
  const std::vector<Outcome> want = run_all(*pipeline, sources, 1);
  std::vector<std::vector<Outcome>> got(3);
  std::vector<std::thread> callers;
  for (auto& g : got) callers.emplace_back([&] { g = run_all(*pipeline, sources, 2); });
  for (auto& t : callers) t.join();
  for (const auto& g : got)
    for (size_t i = 0; i < sources.size(); ++i) EXPECT_EQ(g[i].result.score, want[i].result.score);
}

// A real CPU scorer that claims to be a GPU and fails as told.
class InjectedGpu : public ScoringBackend {
 public:
  InjectedGpu(std::unique_ptr<ScoringBackend> cpu, int good_images, bool sticky)
      : cpu_(std::move(cpu)), good_images_(good_images), sticky_(sticky) {
    device_.kind = DeviceKind::kCuda;
    device_.name = "cuda";
  }
  std::vector<BatchItem> score_batch(std::span<const PreparedImage* const> images) override {
    std::vector<BatchItem> items;
    for (const PreparedImage* image : images) {
      if (calls_++ >= good_images_ && (sticky_ || calls_ == good_images_ + 1)) {
        broken_ = sticky_;
        items.emplace_back().error = "injected: an illegal memory access was encountered";
      } else {
        items.push_back(std::move(cpu_->score_batch({&image, 1})[0]));
      }
    }
    return items;
  }
  ScoreResult score_image(const Image& image) override {
    if (broken_) throw Error("injected: the device is unusable");
    return cpu_->score_image(image);
  }
  const ModelInfo& model() const override { return cpu_->model(); }
  const DeviceChoice& device() const override { return device_; }

 private:
  std::unique_ptr<ScoringBackend> cpu_;
  DeviceChoice device_;
  int good_images_, calls_ = 0;
  bool sticky_, broken_ = false;
};

class DeviceFailure : public ::testing::Test {
 protected:
  static std::unique_ptr<ScoringBackend> open_cpu() {
    ScorerParams params;
    params.weights_path = test::small_test_model();
    params.device = DeviceKind::kCpu;
    return backend_for(Scorer::open(params));
  }
  ModelRunner runner(DeviceKind requested, bool sticky) {
    return ModelRunner(
        std::make_unique<InjectedGpu>(open_cpu(), 2, sticky), requested,
        [this] {
          ++cpu_opens_;
          return open_cpu();
        },
        [this](const std::string& note) { notes_.push_back(note); });
  }
  Outcome score(ModelRunner& runner, const std::string& name) {
    const PreparedImage* one[] = {image_.get()};
    return std::move(runner.score({&name, 1}, one)[0]);
  }
  void SetUp() override {
    image_ = prepare_image_file(test::source_path("tests/data/chelsea_200x133_q90.jpg"),
                                open_cpu()->model().config, DecodeOptions{});
  }
  PreparedImagePtr image_;
  int cpu_opens_ = 0;
  std::vector<std::string> notes_;
};

TEST_F(DeviceFailure, AutoGoesOnOnTheCpuWhenTheGpuBreaks) {
  ModelRunner run = runner(DeviceKind::kAuto, /*sticky=*/true);
  const PreparedImage* one[] = {image_.get()};
  const float expected = open_cpu()->score_batch(one)[0].result.score;
  for (int i = 0; i < 2; ++i) {
    const Outcome o = score(run, "a.png");
    EXPECT_EQ(o.device, "cuda");
    EXPECT_EQ(o.result.score, expected);
  }
  const Outcome failed = score(run, "b.png");
  EXPECT_EQ(failed.error, "b.png: scoring failed on cuda: injected: an illegal memory access "
                          "was encountered");
  ASSERT_EQ(notes_.size(), 1u);
  EXPECT_NE(notes_[0].find("scoring the rest on the CPU"), std::string::npos) << notes_[0];
  EXPECT_NE(run.fallback_reason().find("device cuda can no longer score"), std::string::npos);
  for (int i = 0; i < 3; ++i) {
    const Outcome o = score(run, "c.png");
    EXPECT_TRUE(o.ok()) << o.error;
    EXPECT_EQ(o.device, "cpu");
    EXPECT_EQ(o.result.score, expected);
  }
  EXPECT_EQ(notes_.size(), 1u);  // said once
  EXPECT_EQ(cpu_opens_, 1);
}

TEST_F(DeviceFailure, OneFailedImageLeavesAWorkingGpuInUse) {
  ModelRunner run = runner(DeviceKind::kAuto, /*sticky=*/false);
  score(run, "a.png");
  score(run, "a.png");
  EXPECT_FALSE(score(run, "huge.png").ok());
  const Outcome after = score(run, "c.png");
  EXPECT_TRUE(after.ok()) << after.error;
  EXPECT_EQ(after.device, "cuda");
  EXPECT_EQ(cpu_opens_, 0);
  EXPECT_TRUE(notes_.empty());
}

TEST_F(DeviceFailure, AnExplicitDeviceThatBreaksEndsTheRun) {
  ModelRunner run = runner(DeviceKind::kCuda, /*sticky=*/true);
  score(run, "a.png");
  score(run, "a.png");
  try {
    score(run, "b.png");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("device cuda can no longer score"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(cpu_opens_, 0);
}

}  // namespace
}  // namespace musiq
