// The patches of every scale of a TokenPlan, from an image's bytes, written once for both
// devices: make_tokens runs it with the CPU's ops (engine/preprocess/preprocess.cc),
// GpuModel with the GPU's (engine/model/gpu_model.cc), each on buffers of its device.
// Normalize once, then per scale: resize (all scales but the native one), extract the
// SAME patches, keep the first g.tokens of them.
#pragma once
#include <cstdint>

#include "base/resize_plan.h"
#include "engine/preprocess/preprocess.h"

namespace musiq {

// What a device provides to preprocessing: these ops of cpu/ops.h under the same names and
// arguments (the GPU's also carry their stream and find the device copy of each ResizePlan
// they are given), and a copy of floats between two of its buffers.
template <typename Ops>
concept PreprocessOps = requires(Ops& ops, const uint8_t* rgb, const float* in, float* out,
                                 int64_t count, int size, const ResizePlan& plan) {
  ops.normalize_image(rgb, count, out);
  ops.gaussian_resize(in, size, size, size, plan, plan, out, out);
  ops.extract_patches(in, size, size, size, size, size, size, size, out);
  ops.copy(out, in, count);
};

// Scratch on the device of the ops, as large as token_scratch_sizes says.
struct TokenScratch {
  float* normalized;     // the whole image
  float* resize_tmp;     // a resize's intermediate: rows resized, columns not yet
  float* resized;        // one resized scale
  float* scale_patches;  // one scale's patches, where it keeps fewer tokens than it has
};
// Floats of each TokenScratch buffer for an image of this size and its plan.
struct TokenScratchSizes {
  int64_t normalized = 0, resize_tmp = 0, resized = 0, scale_patches = 0;
};
TokenScratchSizes token_scratch_sizes(int height, int width, const TokenPlan& plan,
                                      int patch_size);

// The plan's tokens' patches [plan.count(), patch_size^2 * 3] into `patches`, from the
// height x width RGB bytes `rgb`; every pointer on the device of `ops`.
template <PreprocessOps Ops>
void write_token_patches(Ops& ops, const uint8_t* rgb, int height, int width,
                         const TokenPlan& plan, int patch_size, const TokenScratch& scratch,
                         float* patches) {
  const int64_t patch_values = int64_t{patch_size} * patch_size * 3;
  ops.normalize_image(rgb, int64_t{height} * width * 3, scratch.normalized);
  for (const ScalePlan& scale : plan.scales) {
    const ScaleGeometry& g = scale.geometry;
    const float* pixels = scratch.normalized;
    if (scale.resized) {
      ops.gaussian_resize(scratch.normalized, height, width, 3, scale.rows, scale.cols,
                          scratch.resize_tmp, scratch.resized);
      pixels = scratch.resized;
    }
    // In place, unless the scale has more patches than its token limit.
    const bool keeps_all = int64_t{g.count_h} * g.count_w == g.tokens;
    ops.extract_patches(pixels, g.height, g.width, patch_size, g.count_h, g.count_w, g.pad_top,
                        g.pad_left, keeps_all ? patches : scratch.scale_patches);
    if (!keeps_all) ops.copy(patches, scratch.scale_patches, g.tokens * patch_values);
    patches += g.tokens * patch_values;
  }
}

}  // namespace musiq
