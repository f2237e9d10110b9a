// Several images' tokens packed into one sequence matrix without padding, as
// flash-attention's varlen kernels take them: image b's rows are [starts[b], starts[b+1]),
// its CLS token first, then its patch tokens. Every op of the forward pass runs once over
// all rows; attention and the head use the offsets to keep the images apart.
#pragma once
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

namespace musiq {

// One image's model input, on the device that runs the pass.
struct ImageInput {
  const float* patches = nullptr;      // [tokens, patch_values]
  const int32_t* spatial = nullptr;    // [tokens]
  const int32_t* scale_id = nullptr;   // [tokens]
  int64_t tokens = 0;                  // patch tokens, CLS not included
};

struct PackedBatch {
  std::vector<ImageInput> images;
  std::vector<int64_t> starts;           // [images + 1], on the host; starts.back() = rows
  const int64_t* device_starts = nullptr;  // the same on the running device (CPU: starts)

  int batch() const { return static_cast<int>(images.size()); }
  int64_t rows() const { return starts.empty() ? 0 : starts.back(); }
  int64_t tokens() const { return rows() - batch(); }
  int64_t longest() const;  // rows of the longest image
};

// Row offsets for images of these token counts (CLS added to each): [n + 1] entries.
std::vector<int64_t> sequence_starts(std::span<const int64_t> tokens);

// Splits images (token counts, CLS not included, in order) into consecutive runs of at
// most `max_images` whose rows (tokens + CLS) stay within `row_budget`; an image larger
// than the budget runs alone. Returns [begin, end) index pairs covering every image.
std::vector<std::pair<size_t, size_t>> split_batches(std::span<const int64_t> tokens,
                                                     int max_images, int64_t row_budget);

}  // namespace musiq
