#include "engine/preprocess/preprocess.h"

#include <algorithm>
#include <cmath>

#include "base/error.h"
#include "base/resize_plan.h"
#include "cpu/ops.h"
#include "engine/preprocess/token_patches.h"

namespace musiq {

std::pair<int, int> resized_shape(int height, int width, int longer_side) {
  const float ratio = static_cast<float>(longer_side) / static_cast<float>(std::max(height, width));
  const int rh = static_cast<int>(std::nearbyint(static_cast<float>(height) * ratio));
  const int rw = static_cast<int>(std::nearbyint(static_cast<float>(width) * ratio));
  return {std::max(rh, 1), std::max(rw, 1)};
}

std::vector<int32_t> hashed_axis_positions(int count, int grid) {
  std::vector<int32_t> pos(count);
  const float scale = static_cast<float>(grid) / static_cast<float>(count);
  for (int i = 0; i < count; ++i)
    pos[i] = std::min(static_cast<int32_t>(std::floor(static_cast<float>(i) * scale)), grid - 1);
  return pos;
}

ScaleGeometry scale_geometry(int height, int width, int patch, int64_t max_length) {
  ScaleGeometry g;
  g.height = height;
  g.width = width;
  g.count_h = (height + patch - 1) / patch;
  g.count_w = (width + patch - 1) / patch;
  g.pad_top = (g.count_h * patch - height) / 2;
  g.pad_left = (g.count_w * patch - width) / 2;
  const int64_t all = int64_t{g.count_h} * g.count_w;
  g.length = max_length < 0 ? all : max_length;
  g.tokens = std::min(all, g.length);
  return g;
}

TokenPlan plan_tokens(int height, int width, const ModelConfig& config) {
  // Decoders refuse empty images; this guards the resize plans against any that slips by.
  if (height <= 0 || width <= 0)
    throw Error("image has no pixels (" + std::to_string(width) + "x" + std::to_string(height) +
                ")");
  TokenPlan plan;
  auto add_scale = [&](ScalePlan scale) {
    const ScaleGeometry& g = scale.geometry;
    const std::vector<int32_t> hh = hashed_axis_positions(g.count_h, config.hse_grid_size);
    const std::vector<int32_t> hw = hashed_axis_positions(g.count_w, config.hse_grid_size);
    const int scale_id = static_cast<int>(plan.scales.size());
    for (int64_t p = 0; p < g.tokens; ++p) {
      plan.spatial.push_back(hh[p / g.count_w] * config.hse_grid_size + hw[p % g.count_w]);
      plan.scale_id.push_back(scale_id);
    }
    plan.scales.push_back(std::move(scale));
  };
  for (int longer_side : config.longer_side_lengths) {
    const auto [rh, rw] = resized_shape(height, width, longer_side);
    const int64_t per_side = (longer_side + config.patch_size - 1) / config.patch_size;
    ScalePlan scale;
    scale.geometry = scale_geometry(rh, rw, config.patch_size, per_side * per_side);
    scale.resized = true;
    scale.rows = gaussian_resize_plan(height, rh);
    scale.cols = gaussian_resize_plan(width, rw);
    add_scale(std::move(scale));
  }
  ScalePlan native;
  native.geometry =
      scale_geometry(height, width, config.patch_size, config.max_seq_len_from_original_res);
  add_scale(std::move(native));
  return plan;
}

void check_image(const Image& image) {
  if (image.width <= 0 || image.height <= 0 ||
      image.rgb.size() != size_t(image.width) * image.height * 3)
    throw Error("image has no pixels or a wrong buffer size (" + std::to_string(image.width) +
                "x" + std::to_string(image.height) + ")");
}

namespace {

// The device of token_patches.h on the CPU: cpu/ops.h as it is.
struct CpuPreprocessOps {
  void normalize_image(const uint8_t* rgb, int64_t count, float* out) {
    cpu::normalize_image(rgb, count, out);
  }
  void gaussian_resize(const float* in, int in_h, int in_w, int channels, const ResizePlan& rows,
                       const ResizePlan& cols, float* tmp, float* out) {
    cpu::gaussian_resize(in, in_h, in_w, channels, rows, cols, tmp, out);
  }
  void extract_patches(const float* image, int h, int w, int patch, int count_h, int count_w,
                       int pad_top, int pad_left, float* out) {
    cpu::extract_patches(image, h, w, patch, count_h, count_w, pad_top, pad_left, out);
  }
  void copy(float* dst, const float* src, int64_t count) { std::copy_n(src, count, dst); }
};

}  // namespace

Tokens make_tokens(const Image& image, const ModelConfig& config) {
  check_image(image);
  TokenPlan plan = plan_tokens(image.height, image.width, config);
  Tokens tokens;
  tokens.patch_values = config.patch_values();
  tokens.patches.resize(size_t(plan.count() * tokens.patch_values));
  const TokenScratchSizes sizes =
      token_scratch_sizes(image.height, image.width, plan, config.patch_size);
  std::vector<float> normalized(size_t(sizes.normalized)), tmp(size_t(sizes.resize_tmp)),
      resized(size_t(sizes.resized)), cut(size_t(sizes.scale_patches));
  CpuPreprocessOps ops;
  write_token_patches(ops, image.rgb.data(), image.height, image.width, plan, config.patch_size,
                      {normalized.data(), tmp.data(), resized.data(), cut.data()},
                      tokens.patches.data());
  for (const ScalePlan& scale : plan.scales) tokens.scales.push_back(scale.geometry);
  tokens.spatial = std::move(plan.spatial);
  tokens.scale_id = std::move(plan.scale_id);
  return tokens;
}

OfficialLayout to_official_layout(const Tokens& tokens) {
  OfficialLayout out;
  int64_t src = 0;
  for (const ScaleGeometry& g : tokens.scales) {
    for (int64_t t = 0; t < g.length; ++t) {
      const bool real = t < g.tokens;
      if (real) {
        const float* p = tokens.patches.data() + (src + t) * tokens.patch_values;
        out.patches.insert(out.patches.end(), p, p + tokens.patch_values);
      } else {
        out.patches.insert(out.patches.end(), tokens.patch_values, 0.0f);
      }
      out.spatial.push_back(real ? tokens.spatial[src + t] : 0);
      out.scale_id.push_back(real ? tokens.scale_id[src + t] : 0);
      out.mask.push_back(real ? 1.0f : 0.0f);
    }
    src += g.tokens;
  }
  return out;
}

}  // namespace musiq
