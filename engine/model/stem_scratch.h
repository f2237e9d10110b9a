// The patch stem's scratch for a tile of tokens: im2col columns and the activations
// between its convolutions, each token's maps apart from the others' (forward.h).
#pragma once
#include <algorithm>
#include <cstdint>

#include "weights/config.h"

namespace musiq {

inline constexpr int kStemPatch = 32, kStemRootOut = 16, kStemPoolOut = 8;

// Per token: the larger im2col (conv_root: 16*16 positions x 7*7*3; conv2: 8*8 x 3*3*64;
// the GPU's convolutions write it under bf16 and tf32 and leave it unused under fp32, which
// reads the windows in place; the CPU's hold only their padded input there), conv_root's
// output, the pooled map and the unit's two inner maps, the projection, and the unit's
// output (which the embedding reads, so it lives in the workspace). One size for every
// precision: the pass gives each convolution the same columns pointer whatever its
// arithmetic.
inline constexpr int64_t kStemColumnsPerToken =
    std::max(kStemRootOut * kStemRootOut * 7 * 7 * 3, kStemPoolOut * kStemPoolOut * 3 * 3 * kStemWidth);
inline constexpr int64_t kStemRootPerToken = kStemRootOut * kStemRootOut * kStemWidth;
inline constexpr int64_t kStemPooledPerToken = kStemPoolOut * kStemPoolOut * kStemWidth;
inline constexpr int64_t kStemUnitPerToken = kStemPoolOut * kStemPoolOut * kStemOutWidth;
inline constexpr int64_t kStemScratchPerToken =
    kStemColumnsPerToken + kStemRootPerToken + 3 * kStemPooledPerToken + kStemUnitPerToken;

struct StemScratch {
  float *columns, *root, *pooled, *mid, *mid2, *proj;
};

// `tokens` tokens' scratch carved from kStemScratchPerToken * tokens floats at `base`.
inline StemScratch stem_scratch_at(float* base, int64_t tokens) {
  StemScratch s;
  s.columns = base;
  s.root = s.columns + tokens * kStemColumnsPerToken;
  s.pooled = s.root + tokens * kStemRootPerToken;
  s.mid = s.pooled + tokens * kStemPooledPerToken;
  s.mid2 = s.mid + tokens * kStemPooledPerToken;
  s.proj = s.mid2 + tokens * kStemPooledPerToken;
  return s;
}

}  // namespace musiq
