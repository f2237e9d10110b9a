#include "engine/preprocess/token_patches.h"

#include <algorithm>

namespace musiq {

TokenScratchSizes token_scratch_sizes(int height, int width, const TokenPlan& plan,
                                      int patch_size) {
  TokenScratchSizes s;
  s.normalized = int64_t{height} * width * 3;
  for (const ScalePlan& scale : plan.scales) {
    const ScaleGeometry& g = scale.geometry;
    if (scale.resized) {
      s.resize_tmp = std::max(s.resize_tmp, int64_t{g.height} * width * 3);
      s.resized = std::max(s.resized, int64_t{g.height} * g.width * 3);
    }
    const int64_t patches = int64_t{g.count_h} * g.count_w;
    if (patches != g.tokens)
      s.scale_patches = std::max(s.scale_patches, patches * patch_size * patch_size * 3);
  }
  return s;
}

}  // namespace musiq
