// Multi-scale patch tokens (spec section 2): for each resized scale and the native
// resolution, SAME 32x32 patches with hashed spatial positions and scale ids.
// Padding tokens (mask 0) are not materialized: only the CLS output is used, and
// masked keys contribute nothing, so dropping them gives the same score.
#pragma once
#include <cstdint>
#include <utility>
#include <vector>

#include "base/resize_plan.h"
#include "engine/decode/image.h"
#include "weights/config.h"

namespace musiq {

struct ScaleGeometry {
  int height = 0, width = 0;    // image size at this scale
  int count_h = 0, count_w = 0; // patches per column / row
  int pad_top = 0, pad_left = 0;
  int64_t tokens = 0;           // real tokens kept
  int64_t length = 0;           // official sequence length of the scale (with padding)
};

struct Tokens {
  int patch_values = 0;               // 32*32*3
  std::vector<float> patches;         // [count, patch_values]
  std::vector<int32_t> spatial;       // [count] hashed position in [0, G*G)
  std::vector<int32_t> scale_id;      // [count]
  std::vector<ScaleGeometry> scales;  // resized scales in order, then native
  int64_t count() const { return static_cast<int64_t>(spatial.size()); }
};

// (rh, rw) for the longer side resized to `longer_side`, in float32 as the official
// code computes it, rounded half to even; never 0 (our policy for extreme aspects).
std::pair<int, int> resized_shape(int height, int width, int longer_side);

// TF1 legacy nearest-neighbour resize of [0..grid-1] to `count` entries, in float32.
std::vector<int32_t> hashed_axis_positions(int count, int grid);

ScaleGeometry scale_geometry(int height, int width, int patch, int64_t max_length);

// Where each scale's tokens come from, for an image of this size: what
// write_token_patches (engine/preprocess/token_patches.h) follows on either device.
// Scales in token order: the resized ones (with their resize plans), then the native one
// (no plans).
struct ScalePlan {
  ScaleGeometry geometry;
  bool resized = false;
  ResizePlan rows, cols;  // height, width; empty for the native scale
};
struct TokenPlan {
  std::vector<ScalePlan> scales;
  std::vector<int32_t> spatial, scale_id;  // [count], as in Tokens
  int64_t count() const { return static_cast<int64_t>(spatial.size()); }
};
// Throws musiq::Error for an empty image.
TokenPlan plan_tokens(int height, int width, const ModelConfig& config);

// Throws musiq::Error unless the image has pixels and an RGB buffer of its size.
void check_image(const Image& image);

Tokens make_tokens(const Image& image, const ModelConfig& config);

// The official model input: every scale padded to its length with all-zero tokens
// (mask 0, spatial index 0, scale id 0), as preprocessing.py lays it out.
struct OfficialLayout {
  std::vector<float> patches;  // [n, patch_values]
  std::vector<int32_t> spatial, scale_id;
  std::vector<float> mask;
  int64_t count() const { return static_cast<int64_t>(mask.size()); }
};
OfficialLayout to_official_layout(const Tokens& tokens);

}  // namespace musiq
