// The measurement of `musiq bench`, also run by `musiq score --benchmark`.
#pragma once
#include <string>
#include <vector>

#include "engine/musiq.h"

namespace musiq::cli {

struct BenchOptions {
  std::vector<std::string> images;  // empty: samples/rocket.jpg of the source tree
  std::string model = "koniq";
  std::string weights;
  std::string device = "auto";
  std::string precision = "fp32";
  int runs = 20;
  int warmup = 2;
  int batch = 1;
  TargetSize target;  // every image resized to it first (--target-size)
};

// Times scoring as bench_command.cc describes and prints one JSON object on stdout.
// Throws musiq::Error.
int run_bench(const BenchOptions& options);

}  // namespace musiq::cli
