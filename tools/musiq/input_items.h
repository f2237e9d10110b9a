// What a batch run scores, one item each: an image file, or an image member of a
// WebDataset tar shard (a *.tar input). Shards are divided by --shard as files are (the
// whole shard goes to one part); their members are listed after that.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace musiq::cli {

struct InputItem {
  std::string path;      // the file, or the shard (absolute, as collect_inputs gives it)
  std::string member;    // the member's name inside the shard; "" for a file
  int64_t ordinal = -1;  // the member's entry number in the shard, from 0
  std::string error;     // set when the shard could not be read this far: nothing to score

  bool in_tar() const { return !member.empty(); }
  // What messages call it: the path, or "shard.tar/member".
  std::string name() const { return in_tar() ? path + "/" + member : path; }
};

// WebDataset's key of a member: its name up to the first dot of its file name
// ("part/00001234.jpg" -> "part/00001234"), which groups key.jpg, key.json, key.txt.
std::string webdataset_key(const std::string& member);

// Tar shards are named by extension (.tar, any case).
bool is_tar_shard(const std::string& path);

// The inputs in order, each tar shard replaced by its image members (or an error item);
// `skipped` counts the shards' members without an image extension.
std::vector<InputItem> expand_tar_shards(const std::vector<std::string>& inputs,
                                         int64_t& skipped);

// What identifies an item when a run is resumed: path_identity of the file or shard, and
// for a member its name (after a NUL, which no path holds).
std::string item_identity(const std::string& path, const std::string& member);

}  // namespace musiq::cli
