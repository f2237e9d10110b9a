// The C API (include/musiq/musiq.h) in-process, so the sanitizer build covers it: what a
// caller with a zero-initialised params struct or broken weights gets.
#include "musiq/musiq.h"

#include <cmath>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "tests/test_util.h"

namespace {

musiq_scorer* open_cpu(musiq_params params, const std::string& weights) {
  params.weights = weights.c_str();
  params.device = "cpu";
  musiq_scorer* scorer = nullptr;
  EXPECT_EQ(musiq_open(&params, &scorer), MUSIQ_OK) << musiq_error_message();
  return scorer;
}

const std::string kPhoto = musiq::test::source_path("samples/chelsea.png");

// Zero means "the default" for every field, the limits included.
TEST(CApi, ZeroInitialisedParamsScoreWithTheDefaults) {
  musiq_scorer* scorer = open_cpu(musiq_params{}, musiq::test::small_test_model());
  ASSERT_NE(scorer, nullptr);
  musiq_result r{};
  EXPECT_EQ(musiq_score_file(scorer, kPhoto.c_str(), &r), MUSIQ_OK) << musiq_error_message();
  EXPECT_TRUE(std::isfinite(r.score));
  musiq_close(scorer);
}

TEST(CApi, NegativeLimitsAreRefusedAtOpen) {
  for (int which = 0; which < 2; ++which) {
    musiq_params params = musiq_default_params();
    (which ? params.max_tokens : params.max_pixels) = -7;
    params.weights = musiq::test::small_test_model().c_str();
    params.device = "cpu";
    musiq_scorer* scorer = nullptr;
    EXPECT_EQ(musiq_open(&params, &scorer), MUSIQ_ERROR_OPEN);
    EXPECT_EQ(scorer, nullptr);
    EXPECT_EQ(std::string(musiq_error_message()),
              std::string(which ? "max_tokens" : "max_pixels") +
                  " must be positive, or 0 for the default (-7 given)");
  }
}

// precision: "bf16" scores (not as fp32 does) and says so; tf32 and unknown names fail
// musiq_open with the CLI's message.
TEST(CApi, PrecisionIsChosenAtOpenAndReported) {
  musiq_params params = musiq_default_params();
  EXPECT_EQ(std::string(params.precision), "fp32");
  std::string precision_of[2];
  float score_of[2] = {};
  const char* names[2] = {"fp32", "bf16"};
  for (int i = 0; i < 2; ++i) {
    params.precision = names[i];
    musiq_scorer* scorer = open_cpu(params, musiq::test::small_test_model());
    ASSERT_NE(scorer, nullptr);
    musiq_info info{};
    ASSERT_EQ(musiq_get_info(scorer, &info), MUSIQ_OK);
    precision_of[i] = info.precision;
    musiq_result r{};
    EXPECT_EQ(musiq_score_file(scorer, kPhoto.c_str(), &r), MUSIQ_OK) << musiq_error_message();
    score_of[i] = r.score;
    musiq_close(scorer);
  }
  EXPECT_EQ(precision_of[0], "fp32");
  EXPECT_EQ(precision_of[1], "bf16");
  EXPECT_NE(score_of[0], score_of[1]);
  EXPECT_NEAR(score_of[0], score_of[1], 0.05);
  params.weights = musiq::test::small_test_model().c_str();
  params.device = "cpu";
  for (const char* bad : {"tf32", "fp16"}) {
    params.precision = bad;
    musiq_scorer* scorer = nullptr;
    const int status = musiq_open(&params, &scorer);
    EXPECT_EQ(scorer, nullptr);
    const std::string message = musiq_error_message();
    if (std::string(bad) == "tf32") {
      EXPECT_EQ(status, MUSIQ_ERROR_OPEN);
      EXPECT_EQ(message, "precision tf32 is not available on the CPU (it computes fp32 or bf16)");
    } else {
      EXPECT_EQ(status, MUSIQ_ERROR_ARGUMENT);
      EXPECT_EQ(message, "precision \"fp16\": expected fp32, bf16 or tf32");
    }
  }
}

// Weights whose head overflows: an error and NaN from every entry point, never -inf or
// inf as a score with MUSIQ_OK.
TEST(CApi, NonFiniteScoresAreErrors) {
  musiq_scorer* scorer = open_cpu(musiq_default_params(), musiq::test::non_finite_test_model());
  ASSERT_NE(scorer, nullptr);
  auto expect_refused = [](int status, const musiq_result& r, const char* what) {
    EXPECT_EQ(status, MUSIQ_ERROR_IMAGE) << what;
    EXPECT_EQ(r.status, MUSIQ_ERROR_IMAGE) << what;
    EXPECT_TRUE(std::isnan(r.score)) << what << ": " << r.score;
    ASSERT_NE(r.error, nullptr) << what;
    EXPECT_NE(std::string(r.error).find("non-finite score"), std::string::npos) << r.error;
  };
  musiq_result r{};
  expect_refused(musiq_score_file(scorer, kPhoto.c_str(), &r), r, "file");
  const std::vector<uint8_t> gray(64 * 48, 77);
  expect_refused(musiq_score_rgb8(scorer, gray.data(), 64, 48, 64, 1, &r), r, "pixels");
  musiq_image images[2] = {};
  images[0].kind = MUSIQ_IMAGE_FILE;
  images[0].name = kPhoto.c_str();
  images[1] = {MUSIQ_IMAGE_RGB8, nullptr, gray.data(), 0, 64, 48, 64, 1};
  musiq_result results[2];
  EXPECT_EQ(musiq_score_batch(scorer, images, 2, results), MUSIQ_ERROR_IMAGE);
  expect_refused(MUSIQ_ERROR_IMAGE, results[0], "batch file");
  expect_refused(MUSIQ_ERROR_IMAGE, results[1], "batch pixels");
  musiq_close(scorer);
}

// A JPEG cut short, which libjpeg fills in with a warning: scored with the warning, or
// refused in strict mode, from every entry point.
TEST(CApi, DecoderWarningsAreReportedAndStrictModeRefusesThem) {
  std::ifstream f(musiq::test::source_path("tests/data/chelsea_200x133_q90.jpg"), std::ios::binary);
  std::vector<uint8_t> cut{std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
  cut.resize(cut.size() * 2 / 3);
  cut.insert(cut.end(), {0xFF, 0xD9});
  musiq_image image{MUSIQ_IMAGE_ENCODED, "cut.jpg", cut.data(), cut.size(), 0, 0, 0, 0};
  for (int strict : {0, 1}) {
    musiq_params params = musiq_default_params();
    params.strict = strict;
    musiq_scorer* scorer = open_cpu(params, musiq::test::small_test_model());
    ASSERT_NE(scorer, nullptr);
    musiq_result one{}, batch[1];
    const int one_status = musiq_score_encoded(scorer, cut.data(), cut.size(), &one);
    const int batch_status = musiq_score_batch(scorer, &image, 1, batch);
    for (const musiq_result* r : {&one, &batch[0]}) {
      if (strict) {
        EXPECT_EQ(r->status, MUSIQ_ERROR_IMAGE);
        ASSERT_NE(r->error, nullptr);
        EXPECT_NE(std::string(r->error).find("(refused by strict mode)"), std::string::npos)
            << r->error;
        EXPECT_EQ(r->warning, nullptr);
      } else {
        EXPECT_EQ(r->status, MUSIQ_OK) << (r->error ? r->error : "");
        ASSERT_NE(r->warning, nullptr);
        EXPECT_NE(std::string(r->warning).find("premature end of data segment"),
                  std::string::npos)
            << r->warning;
      }
    }
    EXPECT_EQ(one_status, strict ? MUSIQ_ERROR_IMAGE : MUSIQ_OK);
    EXPECT_EQ(batch_status, strict ? MUSIQ_ERROR_IMAGE : MUSIQ_OK);
    musiq_close(scorer);
  }
}

}  // namespace
