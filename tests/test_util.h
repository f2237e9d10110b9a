// Shared helpers for the C++ tests: seeded random data, tolerance checks, paths.
#pragma once
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

namespace musiq::test {

// Uniform values in [lo, hi) from a fixed seed (failures must reproduce).
std::vector<float> random_floats(size_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f);

// Every |got - want| <= abs_tol + rel_tol * |want|; reports the first mismatches.
::testing::AssertionResult all_close(const std::vector<float>& got, const std::vector<float>& want,
                                     double abs_tol, double rel_tol);

std::string source_path(const std::string& relative);  // MUSIQ_SOURCE_DIR/relative
std::string temp_path(const std::string& name);        // under the build's test tmp dir

// Runs a shell command; returns its exit status.
int run_command(const std::string& command);

// A small random-weight model made once per test binary (tools/musiq-make-test-model).
const std::string& small_test_model();
// A full-size (official shapes) random-weight model, seed 11, made once per test binary.
const std::string& full_test_model(int num_classes);

}  // namespace musiq::test
