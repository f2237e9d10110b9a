#include "engine/model/packed_batch.h"

#include <algorithm>

namespace musiq {

int64_t PackedBatch::longest() const {
  int64_t most = 0;
  for (size_t b = 0; b + 1 < starts.size(); ++b) most = std::max(most, starts[b + 1] - starts[b]);
  return most;
}

std::vector<int64_t> sequence_starts(std::span<const int64_t> tokens) {
  std::vector<int64_t> starts{0};
  for (int64_t n : tokens) starts.push_back(starts.back() + n + 1);
  return starts;
}

std::vector<std::pair<size_t, size_t>> split_batches(std::span<const int64_t> tokens,
                                                     int max_images, int64_t row_budget) {
  std::vector<std::pair<size_t, size_t>> runs;
  size_t begin = 0;
  int64_t rows = 0;
  for (size_t i = 0; i < tokens.size(); ++i) {
    const int64_t r = tokens[i] + 1;
    const bool full = i > begin && (int64_t(i - begin) >= max_images || rows + r > row_budget);
    if (full) {
      runs.emplace_back(begin, i);
      begin = i;
      rows = 0;
    }
    rows += r;
  }
  if (begin < tokens.size()) runs.emplace_back(begin, tokens.size());
  return runs;
}

}  // namespace musiq
