#include "engine/model/model_weights.h"

#include <algorithm>
#include <cmath>

namespace musiq {

std::vector<float> standardize_conv_kernel(const Tensor& hwio) {
  const int64_t cout = hwio.shape.back();
  const int64_t fan_in = hwio.numel() / cout;
  std::vector<float> w(hwio.data);
  for (int64_t o = 0; o < cout; ++o) {
    double sum = 0.0;
    for (int64_t i = 0; i < fan_in; ++i) sum += w[i * cout + o];
    const double mean = sum / fan_in;
    double sq = 0.0;
    for (int64_t i = 0; i < fan_in; ++i) sq += (w[i * cout + o] - mean) * (w[i * cout + o] - mean);
    const double denom = std::sqrt(sq / fan_in) + 1e-5;
    for (int64_t i = 0; i < fan_in; ++i)
      w[i * cout + o] = static_cast<float>((w[i * cout + o] - mean) / denom);
  }
  return w;
}

namespace {

constexpr int64_t kAlignFloats = 64;  // 256 bytes: what cuBLAS and vector loads like best

// Writes the field as the forward pass reads it to `values`: its sources side by side
// along the last axis, each convolution kernel weight-standardized.
void write_field(const WeightsFile& f, const ParamField& field, float* values) {
  const int64_t width = field.shape.back();
  const int64_t rows = element_count(field.shape) / width;
  int64_t column = 0;
  for (const ParamSpec& source : field.sources) {
    const Tensor& t = f.at(source.name);
    std::vector<float> standardized;
    if (field.kind == ParamKind::kConvKernel) standardized = standardize_conv_kernel(t);
    const float* from = standardized.empty() ? t.data.data() : standardized.data();
    const int64_t part = t.numel() / rows;
    for (int64_t r = 0; r < rows; ++r)
      std::copy_n(from + r * part, part, values + r * width + column);
    column += part;
  }
}

}  // namespace

WeightPointers ModelWeights::at(const float* base) const {
  WeightPointers p;
  size_t next = 0;
  for_each_param(p, config, [&](const float*& field, const ParamField&) {
    field = base + offsets[next++];
  });
  return p;
}

ModelWeights prepare_model_weights(const WeightsFile& f) {
  ModelWeights w;
  w.config = f.config;
  for (const ParamField& field : param_fields(f.config)) {
    const int64_t at = int64_t(w.block.size());
    const int64_t end = at + element_count(field.shape);
    w.block.resize(size_t((end + kAlignFloats - 1) / kAlignFloats * kAlignFloats), 0.0f);
    write_field(f, field, w.block.data() + at);
    w.offsets.push_back(at);
  }
  return w;
}

}  // namespace musiq
