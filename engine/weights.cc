#include "engine/weights.h"

#include <cmath>
#include <set>

#include "engine/error.h"
#include "engine/hdf5_file.h"
#include "engine/param_table.h"

namespace musiq {
namespace {

const std::set<std::string> kVariants = {"spaq", "koniq", "paq2piq", "ava", "random"};

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

WeightsFile load_weights(const std::string& path) {
  Hdf5Reader file(path);
  WeightsFile w;
  w.path = path;
  const std::string format = file.string_attribute("format");
  if (format != kFormatName)
    throw Error(path + ": root attribute 'format' is '" + format + "', expected '" +
                kFormatName + "'");
  const int64_t version = file.int_attribute("format_version");
  if (version != kFormatVersion)
    throw Error(path + ": format_version " + std::to_string(version) +
                " is not supported (this build reads version " +
                std::to_string(kFormatVersion) + ")");
  w.variant = file.string_attribute("variant");
  if (!kVariants.count(w.variant))
    throw Error(path + ": unknown variant '" + w.variant + "'");
  w.source = file.has_attribute("source") ? file.string_attribute("source") : "";
  w.config = parse_model_config(file.string_attribute("config"), path);
  const int64_t num_classes = file.int_attribute("num_classes");
  if (num_classes != w.config.num_classes)
    throw Error(path + ": num_classes attribute (" + std::to_string(num_classes) +
                ") disagrees with the config (" + std::to_string(w.config.num_classes) + ")");

  const std::vector<ParamSpec> expected = expected_params(w.config);
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
    const std::vector<int64_t> shape = file.dataset_shape(spec.name);
    if (shape != spec.shape)
      throw Error(path + ": parameter '" + spec.name + "' has shape " +
                  shape_to_string(shape) + ", expected " + shape_to_string(spec.shape));
    Tensor t = file.read_float32(spec.name);
    check_finite(path, spec.name, t);
    w.params.emplace(spec.name, std::move(t));
  }
  return w;
}

}  // namespace musiq
