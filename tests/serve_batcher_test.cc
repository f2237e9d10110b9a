// musiq serve's Batcher with a stand-in model: passes within the row and image budgets,
// first come first served, a huge image alone, the wait bounded, the queue finished at
// stop, a failing pass reported to each of its requests.
#include <gtest/gtest.h>

#include <chrono>
#include <exception>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>
#include <utility>

#include "tools/musiq/serve_batcher.h"

namespace musiq::cli {
namespace {

using std::chrono::milliseconds;

PreparedImagePtr image(int width, int height) {
  Image im;
  im.width = width;
  im.height = height;
  im.rgb.assign(size_t(width) * height * 3, 100);
  return prepare_image(std::move(im), ModelConfig{});
}

// Records each pass's images; scores each image with its index in submission order.
struct FakeModel {
  std::mutex mutex;
  std::vector<std::vector<const PreparedImage*>> passes;
  std::exception_ptr failure;  // what every pass throws, if set
  Batcher::Score score() {
    return [this](std::span<const std::string>, std::span<const PreparedImage* const> images) {
      std::lock_guard<std::mutex> lock(mutex);
      if (failure) std::rethrow_exception(failure);
      passes.emplace_back(images.begin(), images.end());
      std::vector<Outcome> outcomes(images.size());
      for (size_t i = 0; i < images.size(); ++i)
        outcomes[i].result.tokens = prepared_rows(*images[i]);
      return outcomes;
    };
  }
};

BatcherOptions options(milliseconds wait, int64_t rows, size_t images) {
  BatcherOptions o;
  o.max_wait = wait;
  o.max_rows = rows;
  o.max_images = images;
  return o;
}

TEST(Batcher, PassesKeepTheRowBudgetFirstComeFirstServed) {
  std::vector<PreparedImagePtr> images;
  for (int i = 0; i < 5; ++i) images.push_back(image(64, 48));
  const int64_t rows = prepared_rows(*images[0]);
  for (const auto& im : images) ASSERT_EQ(prepared_rows(*im), rows);
  FakeModel model;
  size_t counted = 0;
  {
    Batcher batcher(model.score(), options(milliseconds(100), 2 * rows, 32),
                    [&](size_t n, int64_t) { counted += n; });
    std::vector<std::future<Outcome>> results;
    for (const auto& im : images) results.push_back(batcher.submit("x.jpg", *im));
    for (auto& r : results) {
      ASSERT_EQ(r.wait_for(std::chrono::seconds(30)), std::future_status::ready);
      EXPECT_EQ(r.get().result.tokens, rows);
    }
  }
  ASSERT_EQ(model.passes.size(), 3u);
  EXPECT_EQ(model.passes[0], (std::vector<const PreparedImage*>{images[0].get(), images[1].get()}));
  EXPECT_EQ(model.passes[1], (std::vector<const PreparedImage*>{images[2].get(), images[3].get()}));
  EXPECT_EQ(model.passes[2], (std::vector<const PreparedImage*>{images[4].get()}));
  EXPECT_EQ(counted, 5u);
}

TEST(Batcher, ImageCountLimitsAPassAndAHugeImageRunsAlone) {
  const PreparedImagePtr small = image(40, 40), huge = image(900, 700);
  const int64_t budget = prepared_rows(*small) * 3;
  ASSERT_GT(prepared_rows(*huge), budget);
  FakeModel model;
  {
    Batcher batcher(model.score(), options(milliseconds(100), budget, 2), [](size_t, int64_t) {});
    std::vector<std::future<Outcome>> results;
    for (const PreparedImage* im : {small.get(), huge.get(), small.get(), small.get()})
      results.push_back(batcher.submit("x.jpg", *im));
    for (auto& r : results) ASSERT_EQ(r.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  }
  std::vector<size_t> sizes;
  for (const auto& p : model.passes) sizes.push_back(p.size());
  EXPECT_EQ(sizes, (std::vector<size_t>{1, 1, 2}));  // small; huge alone; two smalls
  EXPECT_EQ(model.passes[1][0], huge.get());
}

TEST(Batcher, ALoneRequestWaitsNoLongerThanMaxWait) {
  const PreparedImagePtr im = image(50, 50);
  FakeModel model;
  Batcher batcher(model.score(), options(milliseconds(50), 1 << 20, 32), [](size_t, int64_t) {});
  auto result = batcher.submit("x.jpg", *im);
  EXPECT_EQ(result.wait_for(std::chrono::seconds(30)), std::future_status::ready);
}

TEST(Batcher, StoppingRunsWhatIsQueuedAtOnce) {
  const PreparedImagePtr im = image(50, 50);
  FakeModel model;
  std::future<Outcome> result;
  const auto start = std::chrono::steady_clock::now();
  {
    Batcher batcher(model.score(), options(milliseconds(60000), 1 << 20, 32),
                    [](size_t, int64_t) {});
    result = batcher.submit("x.jpg", *im);
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(30));
  ASSERT_EQ(result.wait_for(milliseconds(0)), std::future_status::ready);
  EXPECT_TRUE(result.get().ok());
}

TEST(Batcher, AfterStopWaitingQueuedRequestsRunAtOnce) {
  const PreparedImagePtr im = image(50, 50);
  FakeModel model;
  Batcher batcher(model.score(), options(milliseconds(60000), 1 << 20, 32), [](size_t, int64_t) {});
  auto result = batcher.submit("x.jpg", *im);
  EXPECT_EQ(result.wait_for(milliseconds(300)), std::future_status::timeout);  // waits for company
  batcher.stop_waiting();
  EXPECT_EQ(result.wait_for(std::chrono::seconds(30)), std::future_status::ready);
}

TEST(Batcher, AFailedPassIsEachRequestsError) {
  const PreparedImagePtr a = image(50, 50), b = image(60, 40);
  FakeModel model;
  model.failure = std::make_exception_ptr(Error("device lost"));
  Batcher batcher(model.score(), options(milliseconds(200), 1 << 20, 32), [](size_t, int64_t) {});
  auto ra = batcher.submit("x.jpg", *a);
  auto rb = batcher.submit("x.jpg", *b);
  EXPECT_EQ(ra.get().error, "x.jpg: device lost");
  EXPECT_EQ(rb.get().error, "x.jpg: device lost");
}

// Whatever a pass throws is worded as describe_exception words it everywhere.
TEST(Batcher, AnyExceptionFromAPassIsReported) {
  const PreparedImagePtr a = image(50, 50);
  const std::pair<std::exception_ptr, std::string> cases[] = {
      {std::make_exception_ptr(std::bad_alloc()), "out of memory"},
      {std::make_exception_ptr(std::logic_error("a bug")), "internal error: a bug"},
      {std::make_exception_ptr(7), "internal error: unknown exception"}};
  for (const auto& [failure, message] : cases) {
    FakeModel model;
    model.failure = failure;
    Batcher batcher(model.score(), options(milliseconds(0), 1 << 20, 32), [](size_t, int64_t) {});
    EXPECT_EQ(batcher.submit("x.jpg", *a).get().error, "x.jpg: " + message);
  }
}

}  // namespace
}  // namespace musiq::cli
