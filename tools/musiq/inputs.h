// The list of images a batch run scores: files, directories, file lists; sorted,
// de-duplicated, and optionally one shard of N. Paths are made absolute (lexically
// normal), so records name each file the same way whatever directory a run starts in.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace musiq::cli {

struct InputSpec {
  std::vector<std::string> paths;  // files and directories from the command line
  bool recursive = false;          // descend into subdirectories
  std::string files_from;          // a file with one path per line, "-" for stdin
  int shard_index = 0, shard_count = 1;
};

struct InputList {
  std::vector<std::string> images;  // sorted by byte value, no duplicates
  int64_t skipped_non_images = 0;   // files inside directories without an image extension
  int64_t total_before_shard = 0;
};

// Throws musiq::Error for a missing directory argument, an unreadable list file, or when
// no image is found at all (before sharding: a shard may be empty).
// Named files are always kept (a bad one becomes an error record); inside directories only
// files with an image extension are taken.
InputList collect_inputs(const InputSpec& spec);

// Whether a file name has one of the image extensions taken from directories (.jpg, .png,
// ...; any case).
bool has_image_extension(const std::string& name);

// What identifies a file when a run is resumed: the absolute path with symbolic links
// and "." / ".." resolved as far as the file system allows.
std::string path_identity(const std::string& path);

// "K/N" with 0 <= K < N; throws musiq::Error otherwise.
void parse_shard(const std::string& text, int& index, int& count);

}  // namespace musiq::cli
