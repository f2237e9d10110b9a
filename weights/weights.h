// Loading and validating a MUSIQ weights file (weights/FORMAT.md).
#pragma once
#include <map>
#include <string>

#include "base/tensor.h"
#include "weights/config.h"
#include "weights/isolated_process.h"

namespace musiq {

inline constexpr const char* kFormatName = "musiq-hdf5";
inline constexpr int kFormatVersion = 1;

struct WeightsFile {
  std::string path;
  std::string variant;  // spaq, koniq, paq2piq, ava, or random
  std::string source;
  ModelConfig config;
  std::map<std::string, Tensor> params;  // official names, original shapes

  bool is_random() const { return variant == "random"; }
  const Tensor& at(const std::string& name) const;
  int64_t parameter_count() const;
};

// Checks format, version, config, and every parameter's presence, shape, dtype and
// finiteness; unknown datasets are errors. Throws musiq::Error naming what is wrong.
// libhdf5 reads the file in a child process (weights/isolated_process.h) under `limits`,
// so a damaged file that crashes or hangs libhdf5 is one more error, never a crash here.
WeightsFile load_weights(const std::string& path, const IsolationLimits& limits = {});

}  // namespace musiq
