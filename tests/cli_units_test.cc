// The CLI's batch-run parts on their own: JSON text for names that are not UTF-8, and a
// device failing in the middle of a run. No GPU is needed: the
// failure is injected through ScoringBackend, around a real CPU scorer, so this checks
// the run's recovery logic, not any GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>

#include "base/error.h"
#include "tests/test_util.h"
#include "tools/musiq/json_text.h"
#include "tools/musiq/model_runner.h"
#include "tools/musiq/records.h"

namespace musiq::cli {
namespace {

TEST(JsonText, BytesThatAreNotUtf8BecomeSurrogateEscapes) {
  // What Python's json.dumps(os.fsdecode(b"caf\xe9\xff.png")) writes, less ensure_ascii.
  EXPECT_EQ(json_string("caf\xe9\xff.png"), "\"caf\\udce9\\udcff.png\"");
  EXPECT_EQ(json_string("caf\xc3\xa9"), "\"caf\xc3\xa9\"");               // valid: verbatim
  EXPECT_EQ(json_string("\xed\xa0\x80"), "\"\\udced\\udca0\\udc80\"");  // a UTF-8 surrogate
  EXPECT_EQ(json_string("\xc0\xaf"), "\"\\udcc0\\udcaf\"");             // overlong '/'
  EXPECT_EQ(json_string("a\"b\\c\n\x01"), "\"a\\\"b\\\\c\\n\\u0001\"");
}

TEST(JsonText, RoundTripsAnyBytes) {
  std::mt19937 rng(11);
  for (int trial = 0; trial < 2000; ++trial) {
    std::string bytes(rng() % 24, '\0');
    for (char& c : bytes) c = static_cast<char>(rng() % 256);
    const std::string text = "{\"path\":" + json_string(bytes) + ",\"score\":1.5e3}";
    const auto members = parse_flat_json_object(text);
    ASSERT_TRUE(members) << text;
    ASSERT_EQ(members->at("path"), bytes) << text;
  }
}

TEST(JsonText, DecodesStandardEscapes) {
  const auto m = parse_flat_json_object(
      R"( {"a":"\u00e9\ud83d\ude00\/","n":null,"t":true,"x":-1.5E-3} )");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->at("a"), "\xc3\xa9\xf0\x9f\x98\x80/");
  EXPECT_EQ(m->size(), 1u);
}

TEST(JsonText, RefusesWhatIsNotAFlatObject) {
  for (const char* text : {"word", "[1]", "{\"a\":1} x", "{\"a\":[1]}", "{\"a\":\"\\udc00\"}",
                           "{\"a\":\"unterminated}", "{\"a\" 1}", ""})
    EXPECT_FALSE(parse_flat_json_object(text)) << text;
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
    return ModelRunner("koniq", std::make_unique<InjectedGpu>(open_cpu(), 2, sticky), requested,
                       [this] {
                         ++cpu_opens_;
                         return open_cpu();
                       });
  }
  void SetUp() override {
    image_ = prepare_image_file(test::source_path("tests/data/chelsea_200x133_q90.jpg"),
                                open_cpu()->model().config, DecodeOptions{});
  }
  PreparedImagePtr image_;
  int cpu_opens_ = 0;
};

TEST_F(DeviceFailure, AutoGoesOnOnTheCpuWhenTheGpuBreaks) {
  ModelRunner run = runner(DeviceKind::kAuto, /*sticky=*/true);
  const PreparedImage* one[] = {image_.get()};
  const float expected = open_cpu()->score_batch(one)[0].result.score;
  for (int i = 0; i < 2; ++i) {
    const Record r = run.score("a.png", *image_);
    EXPECT_EQ(r.device, "cuda");
    EXPECT_EQ(r.score, expected);
  }
  ::testing::internal::CaptureStderr();
  const Record failed = run.score("b.png", *image_);
  const std::string note = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(failed.error, "b.png: scoring failed on cuda: injected: an illegal memory access "
                          "was encountered");
  EXPECT_NE(note.find("scoring the rest on the CPU"), std::string::npos) << note;
  EXPECT_EQ(std::count(note.begin(), note.end(), '\n'), 1) << note;
  for (int i = 0; i < 3; ++i) {
    ::testing::internal::CaptureStderr();
    const Record r = run.score("c.png", *image_);
    EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");  // said once
    EXPECT_TRUE(r.error.empty()) << r.error;
    EXPECT_EQ(r.device, "cpu");
    EXPECT_EQ(r.score, expected);
  }
  EXPECT_EQ(cpu_opens_, 1);
}

TEST_F(DeviceFailure, OneFailedImageLeavesAWorkingGpuInUse) {
  ModelRunner run = runner(DeviceKind::kAuto, /*sticky=*/false);
  run.score("a.png", *image_);
  run.score("a.png", *image_);
  EXPECT_FALSE(run.score("huge.png", *image_).error.empty());
  const Record after = run.score("c.png", *image_);
  EXPECT_TRUE(after.error.empty()) << after.error;
  EXPECT_EQ(after.device, "cuda");
  EXPECT_EQ(cpu_opens_, 0);
}

TEST_F(DeviceFailure, AnExplicitDeviceThatBreaksEndsTheRun) {
  ModelRunner run = runner(DeviceKind::kCuda, /*sticky=*/true);
  run.score("a.png", *image_);
  run.score("a.png", *image_);
  try {
    run.score("b.png", *image_);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("device cuda can no longer score"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(cpu_opens_, 0);
}

// A run whose output file another program replaces (renames a file over it) or removes
// fails loudly instead of writing on into a file nobody will see.
TEST(RecordSink, NoticesItsFileReplacedOrRemovedInEveryFormat) {
  Record record;
  record.path = "/photos/a.png";
  record.model = "koniq";
  record.score = 50;
  for (Format format : {Format::kJsonl, Format::kCsv, Format::kJson, Format::kTable}) {
    for (bool remove : {false, true}) {
      const std::string path = test::temp_path(test::name("replaced-", int(format), remove));
      const std::string other = path + ".other";
      std::filesystem::remove(path);
      std::unique_ptr<RecordSink> sink = RecordSink::open(format, path, false, false);
      sink->write(record);
      std::ofstream(other) << "someone else's\n";
      if (remove)
        std::filesystem::remove(path);
      else
        std::filesystem::rename(other, path);
      try {
        sink->write(record);
        sink->finish();
        ADD_FAILURE() << "format " << int(format) << (remove ? ": removed" : ": replaced");
      } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find(path + ": replaced or removed by another program"),
                  std::string::npos)
            << e.what();
      }
      if (!remove) {
        std::ifstream in(path);
        std::string content((std::istreambuf_iterator<char>(in)), {});
        EXPECT_EQ(content, "someone else's\n") << int(format);
      }
      sink.reset();
      std::filesystem::remove(other);
    }
  }
}

// json and table output to a file that did not exist: a failed run leaves nothing.
TEST(RecordSink, AFailedJsonRunLeavesNoFileBehind) {
  const std::string path = test::temp_path("never-finished.json");
  std::filesystem::remove(path);
  RecordSink::open(Format::kJson, path, false, false).reset();
  EXPECT_FALSE(std::filesystem::exists(path));
}

}  // namespace
}  // namespace musiq::cli
