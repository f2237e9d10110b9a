// The loader accepts a good file and names the problem in every broken one.
#include "base/error.h"
#include "tests/test_util.h"
#include "weights/weights.h"

namespace musiq {
namespace {

const char* kParam = "Transformer/encoderblock_1/MlpBlock_3/Dense_0/kernel";

// Makes a broken copy of the small test model with tests/python/corrupt_weights.py.
std::string corrupt(const std::string& name, const std::string& how) {
  const std::string out = test::temp_path(name + ".h5");
  const std::string cmd = std::string(MUSIQ_PYTHON) + " " +
                          test::source_path("tests/python/corrupt_weights.py") + " " +
                          test::small_test_model() + " " + out + " " + how + " > /dev/null";
  EXPECT_EQ(test::run_command(cmd), 0) << cmd;
  return out;
}

void expect_load_error(const std::string& path, const std::vector<std::string>& words) {
  try {
    load_weights(path);
    ADD_FAILURE() << "loaded a bad file: " << path;
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.rfind(path + ": ", 0), 0u) << msg;
    for (const std::string& w : words) EXPECT_NE(msg.find(w), std::string::npos) << msg;
  }
}

TEST(WeightsLoader, LoadsTheSmallTestModel) {
  const WeightsFile w = load_weights(test::small_test_model());
  EXPECT_EQ(w.variant, "random");
  EXPECT_TRUE(w.is_random());
  EXPECT_EQ(w.config.hidden_size, 64);
  EXPECT_EQ(w.config.num_layers, 2);
  EXPECT_EQ(w.at("embedding/kernel").shape, (std::vector<int64_t>{16384, 64}));
}

TEST(WeightsLoader, MissingParameter) {
  expect_load_error(corrupt("missing", std::string("--remove ") + kParam),
                    {"missing parameter", kParam});
}

TEST(WeightsLoader, WrongShape) {
  expect_load_error(corrupt("reshaped", std::string("--reshape ") + kParam),
                    {kParam, "has shape", "expected [64,128]"});
}

TEST(WeightsLoader, NaN) {
  expect_load_error(corrupt("nan", std::string("--nan ") + kParam), {kParam, "non-finite"});
}

TEST(WeightsLoader, MaxSeqLenBelowMinusOneIsRefused) {
  expect_load_error(corrupt("max-seq-len", "--config max_seq_len_from_original_res -7"),
                    {"max_seq_len_from_original_res", "must be -1", "got -7"});
}

TEST(WeightsLoader, RenamedParameterIsUnexpected) {
  expect_load_error(corrupt("renamed", std::string("--rename ") + kParam + " " + kParam + "_x"),
                    {"unexpected dataset", "_x"});
}

TEST(WeightsLoader, TruncatedFile) {
  expect_load_error(corrupt("truncated", "--truncate"), {"HDF5"});
}

TEST(WeightsLoader, NotHdf5) {
  const std::string path = test::source_path("samples/rocket.jpg");
  expect_load_error(path, {"not an HDF5 file"});
}

TEST(WeightsLoader, MissingFile) {
  expect_load_error("/nonexistent/model.h5", {"cannot open"});
}

TEST(WeightsLoader, DirectoryIsNotAWeightsFile) {
  expect_load_error(test::source_path("tests"), {"not a regular file"});
}

// Files on which libhdf5 1.10.8 crashes or loops (tests/fixtures/hdf5_crashers/README.md):
// each is one error naming the file, and this process lives on. A CPU limit of a few
// seconds keeps the endless loop short; loading the small model needs far less.
class Hdf5Crasher : public ::testing::TestWithParam<const char*> {};

TEST_P(Hdf5Crasher, IsOneErrorNotACrash) {
  const std::string path =
      test::source_path(std::string("tests/fixtures/hdf5_crashers/") + GetParam());
  IsolationLimits limits;
  limits.cpu_seconds = 4;
  try {
    load_weights(path, limits);
    ADD_FAILURE() << "loaded a damaged file: " << path;
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).rfind(path + ": ", 0), 0u) << e.what();
  }
}

INSTANTIATE_TEST_SUITE_P(FuzzFindings, Hdf5Crasher,
                         ::testing::Values("segv-accum-read.h5", "segv-global-heap.h5",
                                           "heap-overflow-attribute.h5", "huge-allocation.h5",
                                           "endless-loop.h5"),
                         [](const auto& info) {
                           std::string name = info.param;
                           name = name.substr(0, name.find('.'));
                           for (char& c : name)
                             if (c == '-') c = '_';
                           return name;
                         });

TEST(WeightsLoader, SmallModelLoadsUnderTheCrasherTestsLimit) {
  IsolationLimits limits;
  limits.cpu_seconds = 4;
  EXPECT_EQ(load_weights(test::small_test_model(), limits).variant, "random");
}

}  // namespace
}  // namespace musiq
