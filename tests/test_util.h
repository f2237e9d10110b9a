// Shared helpers for the C++ tests of every device: seeded random data, the llm.c-style
// tolerance check, test names, paths, test models. (tests/gpu/gpu_test_util.h adds the
// device buffers.)
#pragma once
#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <random>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "engine/decode/image.h"

namespace musiq::test {

// Uniform floats in [lo, hi) from a fixed seed (failures must reproduce).
std::vector<float> random_floats(size_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f);

// A width x height RGB image of uniform random bytes from a fixed seed.
Image random_image(int width, int height, uint32_t seed);

// Uniform integers in [lo, hi] from a fixed seed.
template <typename T>
std::vector<T> random_ints(size_t n, uint32_t seed, T lo, T hi) {
  static_assert(std::is_integral_v<T>);
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int64_t> dist(lo, hi);
  std::vector<T> v(n);
  for (T& x : v) x = static_cast<T>(dist(rng));
  return v;
}

// Every |got[i] - want[i]| <= bound(i, |want[i]|). A non-finite value on either side must
// be matched by the same non-finite value on the other (NaN == NaN here). Reports the count,
// the worst error and the first few mismatches; `bound_text` describes the bound.
::testing::AssertionResult all_within(const float* got, const float* want, size_t n,
                                      const std::function<double(size_t, double)>& bound,
                                      const std::string& bound_text);
// all_within with the bound abs_tol + rel_tol * |want|.
::testing::AssertionResult all_close(const float* got, const float* want, size_t n,
                                     double abs_tol, double rel_tol);
::testing::AssertionResult all_close(const std::vector<float>& got, const std::vector<float>& want,
                                     double abs_tol, double rel_tol);
// Bit-for-bit equality (for ops whose arithmetic is the same operation by operation).
::testing::AssertionResult all_equal(const std::vector<float>& got,
                                     const std::vector<float>& want);

// Concatenates its arguments with operator<<: test-case names such as name("n", 33, "_c", 64)
// (not "n" + std::to_string(33), which trips GCC 12's -Wrestrict false positive).
template <typename... Args>
std::string name(const Args&... args) {
  std::ostringstream out;
  (out << ... << args);
  return out.str();
}

std::string source_path(const std::string& relative);  // MUSIQ_SOURCE_DIR/relative
std::string temp_path(const std::string& name);        // under the build's test tmp dir

// Runs a shell command; returns its exit status.
int run_command(const std::string& command);

// A small random-weight model made once per test binary (tools/musiq-make-test-model).
const std::string& small_test_model();
// small_test_model with every head weight and bias 3e38: its scores overflow to -inf.
const std::string& non_finite_test_model();
// A full-size (official shapes) random-weight model, seed 11, made once per test binary.
const std::string& full_test_model(int num_classes);

}  // namespace musiq::test
