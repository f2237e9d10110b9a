#include "base/resize_plan.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace musiq {
namespace {

constexpr float kGaussianRadius = 1.5f;
constexpr float kSigma = kGaussianRadius / 3.0f;
constexpr float kTriangleRadius = 1.0f;

// TensorFlow's GaussianKernelFunc: the exponent is divided in double, the result
// returned as float.
float gaussian(float x) {
  x = std::abs(x);
  if (x >= kGaussianRadius) return 0.0f;
  return static_cast<float>(std::exp(-x * x / (2.0 * kSigma * kSigma)));
}

// TensorFlow's TriangleKernelFunc.
float triangle(float x) {
  x = std::abs(x);
  return x < 1.0f ? 1.0f - x : 0.0f;
}

// ComputeSpansCore of tensorflow/core/kernels/image/scale_and_translate_op.cc with
// scale = float32(out) / float32(in), translate 0, in float32 arithmetic. With
// `antialias`, a downscale widens the kernel by the downscale factor.
template <class Kernel>
ResizePlan scale_and_translate_plan(int in_size, int out_size, Kernel kernel, float radius,
                                    bool antialias) {
  ResizePlan plan;
  plan.in_size = in_size;
  plan.out_size = out_size;
  const float scale = static_cast<float>(out_size) / static_cast<float>(in_size);
  const float inv_scale = static_cast<float>(1.0 / scale);
  const float kernel_scale = antialias ? std::max(inv_scale, 1.0f) : 1.0f;
  const float one_over_kernel_scale = 1.0f / kernel_scale;
  const float reach = radius * kernel_scale;
  plan.span = std::min(2 * static_cast<int>(std::ceil(reach)) + 1, in_size);
  plan.starts.assign(out_size, 0);
  plan.weights.assign(size_t(out_size) * plan.span, 0.0f);
  std::vector<float> taps;
  for (int x = 0; x < out_size; ++x) {
    const float sample = (static_cast<float>(x) + 0.5f) * inv_scale;
    if (sample < 0 || sample > static_cast<float>(in_size)) continue;  // empty span
    int64_t start = static_cast<int64_t>(std::ceil(sample - reach - 0.5f));
    int64_t end = static_cast<int64_t>(std::floor(sample + reach - 0.5f));
    start = std::clamp<int64_t>(start, 0, in_size - 1);
    end = std::clamp<int64_t>(end, 0, in_size - 1) + 1;
    float total = 0.0f;
    taps.clear();
    for (int64_t s = start; s < end; ++s) {
      const float w =
          kernel(std::abs((static_cast<float>(s) + 0.5f - sample) * one_over_kernel_scale));
      total += w;
      taps.push_back(w);
    }
    if (std::abs(total) >= 1000.0f * std::numeric_limits<float>::min()) {
      const float inv_total = 1.0f / total;
      for (size_t t = 0; t < taps.size(); ++t)
        plan.weights[size_t(x) * plan.span + t] = taps[t] * inv_total;
    }
    plan.starts[x] = static_cast<int32_t>(start);
  }
  return plan;
}

}  // namespace

ResizePlan gaussian_resize_plan(int in_size, int out_size) {
  return scale_and_translate_plan(in_size, out_size, gaussian, kGaussianRadius, false);
}

ResizePlan bilinear_antialias_resize_plan(int in_size, int out_size) {
  return scale_and_translate_plan(in_size, out_size, triangle, kTriangleRadius, true);
}

}  // namespace musiq
