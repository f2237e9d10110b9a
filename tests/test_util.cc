#include "tests/test_util.h"

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <functional>
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

Image random_image(int width, int height, uint32_t seed) {
  Image image;
  image.width = width;
  image.height = height;
  image.rgb.resize(size_t(width) * height * 3);
  std::mt19937 rng(seed);
  for (uint8_t& v : image.rgb) v = static_cast<uint8_t>(rng() & 0xFF);
  return image;
}

::testing::AssertionResult all_within(const float* got, const float* want, size_t n,
                                      const std::function<double(size_t, double)>& bound,
                                      const std::string& bound_text) {
  constexpr int kShow = 8;
  std::ostringstream first;
  first.precision(9);
  size_t bad = 0, non_finite = 0;
  double worst = 0, worst_want = 0;
  size_t worst_at = 0;
  for (size_t i = 0; i < n; ++i) {
    const double g = got[i], w = want[i];
    bool ok;
    if (!std::isfinite(g) || !std::isfinite(w)) {
      ok = (std::isnan(g) && std::isnan(w)) || g == w;
      if (!ok) ++non_finite;
    } else {
      const double err = std::abs(g - w);
      ok = err <= bound(i, std::abs(w));
      if (err > worst) {
        worst = err;
        worst_want = w;
        worst_at = i;
      }
    }
    if (!ok && bad++ < kShow)
      first << "\n  [" << i << "] got " << got[i] << " want " << want[i] << " (diff "
            << (g - w) << ")";
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  std::ostringstream msg;
  msg.precision(9);
  msg << bad << " of " << n << " values outside " << bound_text << " (" << non_finite
      << " non-finite mismatches; max abs err " << worst << " at [" << worst_at
      << "] where want " << worst_want << "); first:" << first.str();
  return ::testing::AssertionFailure() << msg.str();
}

::testing::AssertionResult all_close(const float* got, const float* want, size_t n,
                                     double abs_tol, double rel_tol) {
  std::ostringstream text;
  text << abs_tol << " abs + " << rel_tol << " rel";
  return all_within(
      got, want, n, [&](size_t, double w) { return abs_tol + rel_tol * w; }, text.str());
}

::testing::AssertionResult all_close(const std::vector<float>& got,
                                     const std::vector<float>& want, double abs_tol,
                                     double rel_tol) {
  if (got.size() != want.size())
    return ::testing::AssertionFailure() << "size " << got.size() << " != " << want.size();
  return all_close(got.data(), want.data(), got.size(), abs_tol, rel_tol);
}

::testing::AssertionResult all_equal(const std::vector<float>& got,
                                     const std::vector<float>& want) {
  return all_close(got, want, 0.0, 0.0);
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

const std::string& non_finite_test_model() {
  static const std::string path = [] {
    const std::string out = temp_path("small_seed7_inf_head.h5");
    const std::string cmd =
        std::string(MUSIQ_PYTHON) + " -c \"import h5py, shutil, sys; shutil.copy(sys.argv[1], "
        "sys.argv[2]); f = h5py.File(sys.argv[2], 'r+'); f.visititems(lambda n, o: o.__setitem__("
        "Ellipsis, 3e38) if isinstance(o, h5py.Dataset) and n.startswith('head') else None); "
        "f.close()\" " + small_test_model() + " " + out;
    if (run_command(cmd) != 0) ADD_FAILURE() << "failed: " << cmd;
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
