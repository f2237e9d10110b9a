#include "engine/preprocess/target_size.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/resize_plan.h"
#include "cpu/ops.h"

namespace musiq {

namespace {

void require_both_sides(const TargetSize& target) {
  if (target.width < 1 || target.height < 1)
    throw Error("target size " + std::to_string(target.width) + "x" +
                std::to_string(target.height) + ": both sides must be at least 1 pixel");
}

}  // namespace

void check_target_size(const TargetSize& target) {
  if (target.set()) require_both_sides(target);
}

Image resize_to_target(const Image& image, const TargetSize& target) {
  require_both_sides(target);
  const int h = image.height, w = image.width;
  const int out_h = target.height, out_w = target.width;
  // ScaleAndTranslate reads the uint8 pixels as floats; the separable resize is the one of
  // the multi-scale preprocessing, here with the triangle kernel's plans.
  const std::vector<float> pixels(image.rgb.begin(), image.rgb.end());
  std::vector<float> tmp(size_t(out_h) * w * 3), resized(size_t(out_h) * out_w * 3);
  cpu::gaussian_resize(pixels.data(), h, w, 3, bilinear_antialias_resize_plan(h, out_h),
                       bilinear_antialias_resize_plan(w, out_w), tmp.data(), resized.data());
  Image out;
  out.width = out_w;
  out.height = out_h;
  out.warning = image.warning;
  out.rgb.resize(resized.size());
  for (size_t i = 0; i < resized.size(); ++i)
    out.rgb[i] = static_cast<uint8_t>(std::nearbyint(std::clamp(resized[i], 0.0f, 255.0f)));
  return out;
}

}  // namespace musiq
