#include "tools/musiq/inputs.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>

#include "engine/musiq.h"

namespace musiq::cli {
namespace {

namespace fs = std::filesystem;

void add_directory(const fs::path& dir, bool recursive, InputList& out) {
  std::error_code ec;
  auto visit = [&](const fs::directory_entry& entry) {
    if (!entry.is_regular_file(ec)) return;
    if (has_image_extension(entry.path().string())) {
      out.images.push_back(entry.path().string());
    } else {
      ++out.skipped_non_images;
    }
  };
  const auto options = fs::directory_options::skip_permission_denied;
  if (recursive) {
    for (fs::recursive_directory_iterator it(dir, options, ec), end; !ec && it != end;
         it.increment(ec))
      visit(*it);
  } else {
    for (fs::directory_iterator it(dir, options, ec), end; !ec && it != end; it.increment(ec))
      visit(*it);
  }
  if (ec) throw Error(dir.string() + ": cannot list directory (" + ec.message() + ")");
}

std::string absolute_path(const std::string& path) {
  std::error_code ec;
  const fs::path absolute = fs::absolute(path, ec);
  return ec ? path : absolute.lexically_normal().string();
}

void add_path(const std::string& given, bool recursive, InputList& out) {
  if (given.empty()) throw Error("an empty path (\"\") names no file");
  const std::string path = absolute_path(given);
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    add_directory(path, recursive, out);
  } else {
    out.images.push_back(path);  // a missing or bad file is reported when it is scored
  }
}

}  // namespace

bool has_image_extension(const std::string& name) {
  static const std::set<std::string> kExtensions = {".jpg", ".jpeg", ".jpe", ".jfif", ".png",
                                                    ".bmp", ".tga", ".gif", ".ppm", ".pgm",
                                                    ".pnm", ".psd"};
  std::string ext = fs::path(name).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return kExtensions.count(ext) > 0;
}

std::string path_identity(const std::string& path) {
  std::error_code ec;
  const fs::path canonical = fs::weakly_canonical(fs::absolute(path, ec), ec);
  return ec ? absolute_path(path) : canonical.string();
}

void parse_shard(const std::string& text, int& index, int& count) {
  const size_t slash = text.find('/');
  try {
    if (slash == std::string::npos) throw std::invalid_argument("no slash");
    size_t used = 0;
    index = std::stoi(text.substr(0, slash), &used);
    if (used != slash) throw std::invalid_argument("index");
    count = std::stoi(text.substr(slash + 1), &used);
    if (used != text.size() - slash - 1) throw std::invalid_argument("count");
  } catch (const std::out_of_range&) {
    throw Error("--shard '" + text + "': K and N must be below 2147483648");
  } catch (const std::exception&) {
    throw Error("--shard '" + text + "': expected K/N, e.g. 0/4");
  }
  if (count < 1 || index < 0 || index >= count)
    throw Error("--shard '" + text + "': need 0 <= K < N");
}

InputList collect_inputs(const InputSpec& spec) {
  InputList out;
  for (const std::string& p : spec.paths) add_path(p, spec.recursive, out);
  if (!spec.files_from.empty()) {
    std::ifstream file;
    if (spec.files_from != "-") {
      std::error_code ec;
      if (fs::is_directory(spec.files_from, ec))
        throw Error(spec.files_from + ": --files-from needs a file listing paths, not a directory");
      file.open(spec.files_from);
      if (!file) throw Error(spec.files_from + ": cannot open file list");
    }
    std::istream& in = spec.files_from == "-" ? std::cin : file;
    for (std::string line; std::getline(in, line);) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (!line.empty()) add_path(line, spec.recursive, out);
    }
  }
  std::sort(out.images.begin(), out.images.end());
  out.images.erase(std::unique(out.images.begin(), out.images.end()), out.images.end());
  out.total_before_shard = static_cast<int64_t>(out.images.size());
  if (out.images.empty())
    throw Error(out.skipped_non_images
                    ? "no images found (" + std::to_string(out.skipped_non_images) +
                          " files without an image extension)"
                    : std::string("no images found"));
  if (spec.shard_count > 1) {
    // Round-robin over the sorted list: every image in exactly one shard, shards balanced
    // even when one directory holds the large files.
    std::vector<std::string> mine;
    for (size_t i = spec.shard_index; i < out.images.size(); i += spec.shard_count)
      mine.push_back(out.images[i]);
    out.images = std::move(mine);
  }
  return out;
}

}  // namespace musiq::cli
