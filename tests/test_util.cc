#include "tests/test_util.h"

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <sstream>

namespace musiq::test {

std::vector<float> random_floats(size_t n, uint32_t seed, float lo, float hi) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

::testing::AssertionResult all_close(const std::vector<float>& got, const std::vector<float>& want,
                                     double abs_tol, double rel_tol) {
  if (got.size() != want.size())
    return ::testing::AssertionFailure() << "size " << got.size() << " != " << want.size();
  std::ostringstream first;
  size_t bad = 0;
  double worst = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double err = std::abs(double(got[i]) - want[i]);
    const double bound = abs_tol + rel_tol * std::abs(double(want[i]));
    if (!(err <= bound)) {  // also catches NaN
      if (bad < 5) first << "\n  [" << i << "] got " << got[i] << " want " << want[i];
      ++bad;
    }
    worst = std::max(worst, err);
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << bad << " of " << got.size()
                                       << " values outside abs " << abs_tol << " + rel "
                                       << rel_tol << " (max abs err " << worst << ")"
                                       << first.str();
}

std::string source_path(const std::string& relative) {
  return std::string(MUSIQ_SOURCE_DIR) + "/" + relative;
}

std::string temp_path(const std::string& name) {
  std::filesystem::create_directories(MUSIQ_TEST_TMP);
  return std::string(MUSIQ_TEST_TMP) + "/" + name;
}

int run_command(const std::string& command) {
  const int status = std::system(command.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

const std::string& small_test_model() {
  static const std::string path = [] {
    const std::string out = temp_path("small_seed7.h5");
    if (!std::filesystem::exists(out)) {
      const std::string cmd = std::string(MUSIQ_PYTHON) + " " +
                              source_path("tools/musiq-make-test-model") + " " + out +
                              " --seed 7 --size small --num-classes 1 > /dev/null";
      if (run_command(cmd) != 0) ADD_FAILURE() << "failed: " << cmd;
    }
    return out;
  }();
  return path;
}

const std::string& full_test_model(int num_classes) {
  static std::string paths[2];
  std::string& path = paths[num_classes == 1 ? 0 : 1];
  if (path.empty()) {
    const std::string out = temp_path("full_seed11_c" + std::to_string(num_classes) + ".h5");
    const std::string cmd = std::string(MUSIQ_PYTHON) + " " +
                            source_path("tools/musiq-make-test-model") + " " + out +
                            " --seed 11 --size full --num-classes " +
                            std::to_string(num_classes) + " > /dev/null";
    if (run_command(cmd) != 0) ADD_FAILURE() << "failed: " << cmd;
    path = out;
  }
  return path;
}

}  // namespace musiq::test
