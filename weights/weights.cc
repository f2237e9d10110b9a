#include "weights/weights.h"

#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <new>
#include <set>

#include "base/error.h"
#include "weights/hdf5_file.h"
#include "weights/isolated_process.h"
#include "weights/param_table.h"
#include "weights/weights_locator.h"
#include "weights/weights_stream.h"

namespace musiq {
namespace {

void check_finite(const std::string& path, const std::string& name, const Tensor& t) {
  for (size_t i = 0; i < t.data.size(); ++i) {
    if (!std::isfinite(t.data[i]))
      throw Error(path + ": parameter '" + name + "' has a non-finite value (" +
                  std::to_string(t.data[i]) + ") at flat index " + std::to_string(i));
  }
}

}  // namespace

const Tensor& WeightsFile::at(const std::string& name) const {
  auto it = params.find(name);
  if (it == params.end()) throw Error(path + ": no parameter '" + name + "'");
  return it->second;
}

int64_t WeightsFile::parameter_count() const {
  int64_t n = 0;
  for (const auto& [name, t] : params) n += t.numel();
  return n;
}

namespace {

// Runs in the isolated child: every libhdf5 call on the file happens here. Checks what
// decides which datasets to read (format, config, names, shapes), then sends each
// parameter as soon as it is read, so the child never holds more than one.
void stream_hdf5_weights(const std::string& path, WeightsStreamWriter& out) {
  Hdf5Reader file(path);
  const std::string format = file.string_attribute("format");
  if (format != kFormatName)
    throw Error(path + ": root attribute 'format' is '" + format + "', expected '" +
                kFormatName + "'");
  const int64_t version = file.int_attribute("format_version");
  if (version != kFormatVersion)
    throw Error(path + ": format_version " + std::to_string(version) +
                " is not supported (this build reads version " +
                std::to_string(kFormatVersion) + ")");
  const std::string variant = file.string_attribute("variant");
  const std::string source = file.has_attribute("source") ? file.string_attribute("source") : "";
  const std::string config_json = file.string_attribute("config");
  const ModelConfig config = parse_model_config(config_json, path);
  const int64_t num_classes = file.int_attribute("num_classes");
  if (num_classes != config.num_classes)
    throw Error(path + ": num_classes attribute (" + std::to_string(num_classes) +
                ") disagrees with the config (" + std::to_string(config.num_classes) + ")");

  const std::vector<ParamSpec> expected = expected_params(config);
  std::set<std::string> expected_names;
  for (const ParamSpec& spec : expected) expected_names.insert(spec.name);
  const std::vector<std::string> found = file.dataset_names();
  const std::set<std::string> found_names(found.begin(), found.end());
  for (const std::string& name : found) {
    if (!expected_names.count(name))
      throw Error(path + ": unexpected dataset '" + name +
                  "' (not a MUSIQ parameter for this config)");
  }
  for (const ParamSpec& spec : expected) {
    if (!found_names.count(spec.name))
      throw Error(path + ": missing parameter '" + spec.name + "' " +
                  shape_to_string(spec.shape));
  }
  out.header(variant, source, config_json, expected.size());
  for (const ParamSpec& spec : expected) {
    const std::vector<int64_t> shape = file.dataset_shape(spec.name);
    if (shape != spec.shape)
      throw Error(path + ": parameter '" + spec.name + "' has shape " +
                  shape_to_string(shape) + ", expected " + shape_to_string(spec.shape));
    out.parameter(spec.name, file.read_float32(spec.name));
  }
  out.end();
}

}  // namespace

WeightsFile load_weights(const std::string& path, const IsolationLimits& limits) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) throw Error(path + ": cannot open file for reading");
  if (!S_ISREG(st.st_mode)) throw Error(path + ": not a regular file");
  // libhdf5 1.10 (Debian 12) crashes, leaks or loops on some damaged files (docs/hardening.md):
  // it only ever sees the file in a child process.
  WeightsFile w;
  run_isolated(
      path + ": reading the weights failed, the file is damaged",
      [&path](int fd) {
        WeightsStreamWriter out(fd);
        try {
          stream_hdf5_weights(path, out);
        } catch (const Error& e) {
          out.error(e.what());
        } catch (const std::bad_alloc&) {
          out.error(path + ": out of memory while reading the weights (a dataset declares "
                           "more data than memory holds)");
        }
      },
      [&path, &w](int fd) { w = read_weights_stream(fd, path); }, limits);
  if (!w.is_random() && std::ranges::find(kModelNames, w.variant) == kModelNames.end())
    throw Error(path + ": unknown variant '" + w.variant + "'");
  // The official heads: AVA's 10-bin score distribution, one score for the others.
  const int classes = w.variant == "ava" ? 10 : 1;
  if (w.variant != "random" && w.config.num_classes != classes)
    throw Error(path + ": a " + w.variant + " model has " + std::to_string(classes) +
                " output classes, this file " + std::to_string(w.config.num_classes));
  for (const auto& [name, t] : w.params) check_finite(path, name, t);
  return w;
}

}  // namespace musiq
