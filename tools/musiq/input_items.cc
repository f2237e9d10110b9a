#include "tools/musiq/input_items.h"

#include <algorithm>
#include <cctype>

#include "tools/musiq/inputs.h"
#include "tools/musiq/tar_reader.h"

namespace musiq::cli {

bool is_tar_shard(const std::string& path) {
  if (path.size() < 4) return false;
  std::string ext = path.substr(path.size() - 4);
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return ext == ".tar";
}

std::string webdataset_key(const std::string& member) {
  const size_t slash = member.rfind('/');
  const size_t base = slash == std::string::npos ? 0 : slash + 1;
  const size_t dot = member.find('.', base);
  return dot == std::string::npos ? member : member.substr(0, dot);
}

std::vector<InputItem> expand_tar_shards(const std::vector<std::string>& inputs,
                                         int64_t& skipped) {
  std::vector<InputItem> items;
  for (const std::string& path : inputs) {
    if (is_tar_shard(path)) {
      list_tar_images(path, items, skipped);
    } else {
      items.push_back({path, "", -1, ""});
    }
  }
  return items;
}

std::string item_identity(const std::string& path, const std::string& member) {
  const std::string identity = path_identity(path);
  return member.empty() ? identity : identity + std::string(1, '\0') + member;
}

}  // namespace musiq::cli
