// The stream from the isolated HDF5 reader (weights/weights_stream.h): a round trip keeps
// every parameter bit for bit, an error record is the error, and a stream a damaged
// reader might send (cut short, wrong shape, a parameter twice, trailing bytes) is
// refused naming the weights file, never trusted.
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <functional>
#include <string>

#include "base/error.h"
#include "tests/test_util.h"
#include "weights/weights.h"
#include "weights/weights_stream.h"

namespace musiq {
namespace {

// Writes a stream into a file with `write`, optionally cut to `keep` bytes, and reads it back.
WeightsFile round_trip(const std::function<void(WeightsStreamWriter&)>& write,
                       long keep = -1) {
  // One file per test: ctest runs the tests of this suite in parallel processes.
  const std::string path = test::temp_path(
      std::string("weights_stream_") +
      ::testing::UnitTest::GetInstance()->current_test_info()->name() + ".bin");
  {
    const int fd = open(path.c_str(), O_CREAT | O_TRUNC | O_WRONLY, 0644);
    EXPECT_GE(fd, 0);
    WeightsStreamWriter out(fd);
    write(out);
    if (keep >= 0) EXPECT_EQ(ftruncate(fd, keep), 0);
    close(fd);
  }
  const int fd = open(path.c_str(), O_RDONLY);
  EXPECT_GE(fd, 0);
  struct Closer {
    int fd;
    ~Closer() { close(fd); }
  } closer{fd};
  return read_weights_stream(fd, "model.h5");
}

const WeightsFile& small_model() {
  static const WeightsFile w = load_weights(test::small_test_model());
  return w;
}

// The whole small model, with `edit` given a chance to change the parameter records.
void write_model(WeightsStreamWriter& out,
                 const std::function<void(const std::string&, Tensor&)>& edit = nullptr) {
  const WeightsFile& w = small_model();
  out.header(w.variant, w.source, model_config_to_json(w.config), w.params.size());
  for (const auto& [name, value] : w.params) {
    Tensor t = value;
    if (edit) edit(name, t);
    out.parameter(name, t);
  }
  out.end();
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(WeightsStream, RoundTripIsExact) {
  const WeightsFile got = round_trip([](WeightsStreamWriter& out) { write_model(out); });
  const WeightsFile& want = small_model();
  EXPECT_EQ(got.path, "model.h5");
  EXPECT_EQ(got.variant, want.variant);
  EXPECT_EQ(got.config.hidden_size, want.config.hidden_size);
  ASSERT_EQ(got.params.size(), want.params.size());
  for (const auto& [name, t] : want.params) {
    EXPECT_EQ(got.at(name).shape, t.shape) << name;
    EXPECT_EQ(got.at(name).data, t.data) << name;
  }
}

TEST(WeightsStream, ErrorRecordIsTheError) {
  const std::string msg = error_of([] {
    round_trip([](WeightsStreamWriter& out) { out.error("model.h5: missing parameter 'x'"); });
  });
  EXPECT_EQ(msg, "model.h5: missing parameter 'x'");
}

TEST(WeightsStream, CutShortIsMalformed) {
  const std::string msg =
      error_of([] { round_trip([](WeightsStreamWriter& out) { write_model(out); }, 5000); });
  EXPECT_EQ(msg.rfind("model.h5: the weights reader process sent a malformed stream", 0), 0u)
      << msg;
  EXPECT_NE(msg.find("ends early"), std::string::npos) << msg;
}

TEST(WeightsStream, WrongShapeIsMalformed) {
  const std::string msg = error_of([] {
    round_trip([](WeightsStreamWriter& out) {
      write_model(out, [](const std::string& name, Tensor& t) {
        if (name == "embedding/bias") t.shape = {t.shape[0] / 2, 2};
      });
    });
  });
  EXPECT_NE(msg.find("'embedding/bias' has the wrong shape"), std::string::npos) << msg;
}

TEST(WeightsStream, TrailingBytesAreMalformed) {
  const std::string msg = error_of([] {
    round_trip([](WeightsStreamWriter& out) {
      write_model(out);
      out.end();
    });
  });
  EXPECT_NE(msg.find("no end after the last parameter"), std::string::npos) << msg;
}

TEST(WeightsStream, ParameterTwiceIsMalformed) {
  const std::string msg = error_of([] {
    round_trip([](WeightsStreamWriter& out) {
      const WeightsFile& w = small_model();
      out.header(w.variant, w.source, model_config_to_json(w.config), w.params.size());
      for (size_t i = 0; i < w.params.size(); ++i)
        out.parameter(w.params.begin()->first, w.params.begin()->second);
      out.end();
    });
  });
  EXPECT_NE(msg.find("sent twice"), std::string::npos) << msg;
}

}  // namespace
}  // namespace musiq
