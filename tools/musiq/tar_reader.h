// WebDataset tar shards read with libarchive, straight from the archive (nothing is
// extracted to disk). A member is an image by its extension, as a file in a directory is.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "tools/musiq/input_items.h"

struct archive;

namespace musiq::cli {

// Appends the shard's image members, found from their headers (the data is skipped), to
// `out`, counting the other members in `skipped`. A shard that cannot be opened, or is
// truncated or corrupt, ends its list with an item that carries the error.
void list_tar_images(const std::string& shard, std::vector<InputItem>& out, int64_t& skipped);

// Reads members' bytes for several threads in a fixed order: call `turn` 0, 1, 2, ... each
// waits for the one before it, so each archive is read once, front to back, however the
// threads interleave. Every turn must be taken exactly once.
class TarMemberReader {
 public:
  TarMemberReader() = default;
  TarMemberReader(const TarMemberReader&) = delete;
  ~TarMemberReader();

  // The member's bytes; throws musiq::Error naming item.name() when they cannot be read.
  std::vector<uint8_t> read(size_t turn, const InputItem& item);

 private:
  std::vector<uint8_t> read_in_turn(const InputItem& item);
  void open(const std::string& shard);
  void close();

  std::mutex mutex_;
  std::condition_variable turn_done_;
  size_t next_turn_ = 0;
  struct archive* archive_ = nullptr;
  std::string shard_;        // the archive open, "" when none
  int64_t next_ordinal_ = 0;  // the entry the next header read gives
};

}  // namespace musiq::cli
