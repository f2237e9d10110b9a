#include "tools/musiq/tar_reader.h"

#include <archive.h>
#include <archive_entry.h>

#include "engine/musiq.h"
#include "tools/musiq/inputs.h"

namespace musiq::cli {
namespace {

constexpr size_t kReadBlock = size_t{1} << 16;

std::string archive_message(struct archive* a) {
  const char* message = archive_error_string(a);
  return message ? message : "unknown libarchive error";
}

// A reader for tar (ustar, pax, GNU) behind any compression libarchive knows; null when
// even that fails (out of memory).
struct archive* new_tar_reader() {
  struct archive* a = archive_read_new();
  if (!a) return nullptr;
  if (archive_read_support_filter_all(a) != ARCHIVE_OK ||
      archive_read_support_format_tar(a) != ARCHIVE_OK) {
    archive_read_free(a);
    return nullptr;
  }
  return a;
}

std::string entry_name(struct archive_entry* entry) {
  const char* name = archive_entry_pathname(entry);
  return name ? name : "";
}

}  // namespace

void list_tar_images(const std::string& shard, std::vector<InputItem>& out, int64_t& skipped) {
  struct archive* a = new_tar_reader();
  if (!a) {
    out.push_back({shard, "", -1, shard + ": cannot read tar shards (out of memory)"});
    return;
  }
  if (archive_read_open_filename(a, shard.c_str(), kReadBlock) != ARCHIVE_OK) {
    out.push_back({shard, "", -1, shard + ": cannot open tar shard: " + archive_message(a)});
    archive_read_free(a);
    return;
  }
  int64_t ordinal = 0;
  struct archive_entry* entry = nullptr;
  for (;; ++ordinal) {
    const int status = archive_read_next_header(a, &entry);
    if (status == ARCHIVE_EOF) break;
    if (status != ARCHIVE_OK && status != ARCHIVE_WARN) {
      out.push_back({shard, "", -1,
                     shard + ": unreadable tar after " + std::to_string(ordinal) +
                         " entries: " + archive_message(a)});
      break;
    }
    const std::string name = entry_name(entry);
    if (archive_entry_filetype(entry) == AE_IFREG) {
      if (!name.empty() && has_image_extension(name)) {
        out.push_back({shard, name, ordinal, ""});
      } else {
        ++skipped;
      }
    }
    if (archive_read_data_skip(a) != ARCHIVE_OK) {
      out.push_back({shard, "", -1,
                     shard + ": unreadable tar in entry " + std::to_string(ordinal) + " (" +
                         name + "): " + archive_message(a)});
      break;
    }
  }
  archive_read_free(a);
}

TarMemberReader::~TarMemberReader() { close(); }

std::vector<uint8_t> TarMemberReader::read(size_t turn, const InputItem& item) {
  std::unique_lock<std::mutex> lock(mutex_);
  turn_done_.wait(lock, [&] { return next_turn_ == turn; });
  struct NextTurn {
    TarMemberReader& reader;
    ~NextTurn() {
      ++reader.next_turn_;
      reader.turn_done_.notify_all();
    }
  } next_turn{*this};
  return read_in_turn(item);
}

void TarMemberReader::open(const std::string& shard) {
  close();
  archive_ = new_tar_reader();
  if (!archive_) throw Error(shard + ": cannot read tar shards (out of memory)");
  if (archive_read_open_filename(archive_, shard.c_str(), kReadBlock) != ARCHIVE_OK) {
    const std::string message = archive_message(archive_);
    close();
    throw Error(shard + ": cannot open tar shard: " + message);
  }
  shard_ = shard;
  next_ordinal_ = 0;
}

void TarMemberReader::close() {
  if (archive_) archive_read_free(archive_);
  archive_ = nullptr;
  shard_.clear();
}

std::vector<uint8_t> TarMemberReader::read_in_turn(const InputItem& item) {
  if (shard_ != item.path || next_ordinal_ > item.ordinal) open(item.path);
  // Any failure leaves the archive in an unknown state: the next member reopens it.
  struct CloseUnlessDone {
    TarMemberReader& reader;
    bool done = false;
    ~CloseUnlessDone() {
      if (!done) reader.close();
    }
  } guard{*this};
  struct archive_entry* entry = nullptr;
  for (; next_ordinal_ <= item.ordinal; ++next_ordinal_) {
    const int status = archive_read_next_header(archive_, &entry);
    if (status == ARCHIVE_EOF) throw Error(item.name() + ": no longer in the tar shard");
    if (status != ARCHIVE_OK && status != ARCHIVE_WARN)
      throw Error(item.name() + ": unreadable tar: " + archive_message(archive_));
    if (next_ordinal_ < item.ordinal && archive_read_data_skip(archive_) != ARCHIVE_OK)
      throw Error(item.name() + ": unreadable tar: " + archive_message(archive_));
  }
  if (entry_name(entry) != item.member)
    throw Error(item.name() + ": the tar shard changed since it was listed");
  std::vector<uint8_t> bytes;
  const la_int64_t declared = archive_entry_size(entry);
  if (declared > 0) bytes.reserve(static_cast<size_t>(declared));
  uint8_t block[kReadBlock];
  for (;;) {
    const la_ssize_t n = archive_read_data(archive_, block, sizeof block);
    if (n == 0) break;
    if (n < 0) throw Error(item.name() + ": unreadable tar: " + archive_message(archive_));
    bytes.insert(bytes.end(), block, block + n);
  }
  if (archive_entry_size_is_set(entry) && static_cast<la_int64_t>(bytes.size()) != declared)
    throw Error(item.name() + ": truncated in the tar shard (" + std::to_string(bytes.size()) +
                " of " + std::to_string(declared) + " bytes)");
  guard.done = true;
  return bytes;
}

}  // namespace musiq::cli
