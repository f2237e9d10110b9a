#include "engine/musiq.h"
#include "tools/musiq/records.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

#include "tools/musiq/input_items.h"
#include "tools/musiq/json_text.h"

namespace musiq::cli {
namespace {

constexpr const char* kRandomNote =
    "random demo weights (musiq-make-test-model): this score is not meaningful";
constexpr const char* kCsvHeader =
    "path,model,score,device,width,height,tokens,ms,error,note,key,member\n";
constexpr size_t kCsvFields = 12;
// Files written before tar shards were read: resumed in their own layout, without the
// key and member columns.
constexpr const char* kCsvHeaderWithoutMembers =
    "path,model,score,device,width,height,tokens,ms,error,note\n";
constexpr size_t kCsvFieldsWithoutMembers = 10;

std::string system_error(const std::string& what) { return what + ": " + std::strerror(errno); }

// Throws when `path` no longer names the file open as `fd` (another program renamed a file
// over it, or removed it): what this run wrote there is in no file any more.
void check_still_at_path(int fd, const std::string& path) {
  struct stat open_file {}, at_path {};
  if (::fstat(fd, &open_file) != 0) throw Error(system_error(path + ": cannot stat"));
  const bool same = ::stat(path.c_str(), &at_path) == 0 && at_path.st_dev == open_file.st_dev &&
                    at_path.st_ino == open_file.st_ino;
  if (!same)
    throw Error(path + ": replaced or removed by another program while this run wrote it; "
                       "the records written so far are lost with the old file");
}

// Takes the lock every musiq run holds on its output file, whatever the format.
void lock_output(int fd, const std::string& path) {
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0)
    throw Error(errno == EWOULDBLOCK ? path + ": another musiq run is writing to it (locked)"
                                     : system_error(path + ": cannot lock"));
}

// One JSON object, members sorted by name. Strings go through json_string (lossless for
// names that are not UTF-8); numbers through nlohmann (shortest round-trip form).
std::string to_json(const Record& r) {
  std::vector<std::pair<std::string, std::string>> members = {
      {"path", json_string(r.path)}, {"model", json_string(r.model)}};
  if (!r.member.empty()) {
    members.push_back({"key", json_string(webdataset_key(r.member))});
    members.push_back({"member", json_string(r.member)});
  }
  if (!r.error.empty()) {
    members.push_back({"error", json_string(r.error)});
  } else {
    members.push_back({"score", nlohmann::json(r.score).dump()});
    members.push_back({"device", json_string(r.device)});
    members.push_back({"precision", json_string(r.precision)});
    members.push_back({"gpu_available", r.gpu_available ? "true" : "false"});
    members.push_back({"width", std::to_string(r.width)});
    members.push_back({"height", std::to_string(r.height)});
    if (r.scored_width) {
      members.push_back({"scored_width", std::to_string(r.scored_width)});
      members.push_back({"scored_height", std::to_string(r.scored_height)});
    }
    members.push_back({"tokens", std::to_string(r.tokens)});
    members.push_back({"ms", nlohmann::json(std::round(r.ms * 10) / 10).dump()});
    if (r.random_weights) members.push_back({"note", json_string(kRandomNote)});
    if (!r.warning.empty()) members.push_back({"warning", json_string(r.warning)});
  }
  std::sort(members.begin(), members.end());
  std::string text = "{";
  for (const auto& [name, value] : members)
    text += (text.size() > 1 ? ",\"" : "\"") + name + "\":" + value;
  return text + "}";
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

// "scored at WxH", or "" when the image was scored at its own size.
std::string scored_size_note(const Record& r) {
  if (!r.scored_width) return "";
  return "scored at " + std::to_string(r.scored_width) + "x" + std::to_string(r.scored_height);
}

std::string csv_note(const Record& r) {
  std::string note = r.random_weights ? kRandomNote : "";
  for (const std::string& more :
       {r.precision == "fp32" ? "" : r.precision + " precision (--precision)",
        r.scored_width ? scored_size_note(r) + " (--target-size)" : "",
        r.warning.empty() ? "" : "decoder warning: " + r.warning})
    if (!more.empty()) note += (note.empty() ? "" : "; ") + more;
  return note;
}

// `with_members`: the key and member columns (all but files resumed from before them).
std::string to_csv(const Record& r, bool with_members = true) {
  std::ostringstream s;
  s << csv_field(r.path) << ',' << csv_field(r.model) << ',';
  if (r.error.empty()) {
    s << std::setprecision(9) << r.score << ',' << r.device << ',' << r.width << ','
      << r.height << ',' << r.tokens << ',' << std::fixed << std::setprecision(1) << r.ms
      << ",," << csv_field(csv_note(r));
  } else {
    s << ",,,,,," << csv_field(r.error) << ',';
  }
  if (with_members)
    s << ',' << csv_field(r.member.empty() ? "" : webdataset_key(r.member)) << ','
      << csv_field(r.member);
  s << '\n';
  return s.str();
}

// A name on one table row: line breaks (legal in file names) written as \n and \r.
std::string one_line(const std::string& text) {
  std::string line;
  for (char c : text) line += c == '\n' ? "\\n" : c == '\r' ? "\\r" : std::string(1, c);
  return line;
}

std::string to_table_row(const Record& r) {
  std::ostringstream s;
  if (r.error.empty()) {
    s << std::fixed << std::setprecision(3) << std::setw(10) << r.score << "  " << std::left
      << std::setw(8) << r.model << std::right << std::setw(11)
      << (std::to_string(r.width) + "x" + std::to_string(r.height)) << std::setw(7) << r.tokens
      << std::setprecision(0) << std::setw(8) << r.ms << "  "
      << one_line(r.member.empty() ? r.path : r.path + "/" + r.member)
      << (r.random_weights ? "  (random weights: not meaningful)" : "")
      << (r.scored_width ? "  (" + scored_size_note(r) + ")" : "")
      << (r.warning.empty() ? "" : "  (decoder warning: " + r.warning + ")");
  } else {
    s << std::setw(10) << "FAILED" << "  " << std::left << std::setw(8) << r.model << "  "
      << one_line(r.error);
  }
  s << '\n';
  return s.str();
}

std::string table_header() {
  return "     score  model         size tokens      ms  path\n";
}

// CSV records (RFC 4180: quoted fields may hold commas, quotes and newlines) of
// `text`; `complete` is set to the length of the text that ends with a complete record.
std::vector<std::vector<std::string>> parse_csv(const std::string& text, size_t& complete) {
  std::vector<std::vector<std::string>> records;
  std::vector<std::string> fields(1);
  bool quoted = false;
  complete = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c == '"' && i + 1 < text.size() && text[i + 1] == '"') {
        fields.back() += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        fields.back() += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      fields.emplace_back();
    } else if (c == '\n') {
      if (!fields.back().empty() && fields.back().back() == '\r') fields.back().pop_back();
      records.push_back(std::move(fields));
      fields.assign(1, "");
      complete = i + 1;
    } else {
      fields.back() += c;
    }
  }
  return records;
}

// A file descriptor whose every write, flush and close is checked.
class OutputFd {
 public:
  OutputFd(int fd, std::string name, bool owned = false)
      : fd_(fd), owned_(owned), name_(std::move(name)) {}
  OutputFd(const OutputFd&) = delete;
  ~OutputFd() {
    if (owned_ && fd_ >= 0) ::close(fd_);
  }
  // `name` in messages: the output the user named, for a temporary file beside it.
  static OutputFd open(const std::string& path, int flags, const std::string& name) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | flags, 0644);
    if (fd < 0) throw Error(system_error(name + ": cannot open for writing"));
    return OutputFd(fd, name, true);
  }
  OutputFd(OutputFd&& o) noexcept : fd_(o.fd_), owned_(o.owned_), name_(std::move(o.name_)) {
    o.fd_ = -1;
  }

  int fd() const { return fd_; }
  void write(const std::string& text) {
    for (size_t done = 0; done < text.size();) {
      const ssize_t n = ::write(fd_, text.data() + done, text.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw Error(system_error(name_ + ": write failed"));
      done += static_cast<size_t>(n);
    }
  }
  // fsync (where the descriptor supports it) and close.
  void close() {
    if (::fsync(fd_) != 0 && errno != EINVAL && errno != EROFS)
      throw Error(system_error(name_ + ": flush failed"));
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0 && errno != EINTR) throw Error(system_error(name_ + ": close failed"));
  }

 private:
  int fd_;
  bool owned_ = false;
  std::string name_;
};

// stdout, or a file that is not a regular file (a device, a FIFO): written in place.
class StreamSink : public RecordSink {
 public:
  StreamSink(Format format, OutputFd out) : format_(format), out_(std::move(out)) {
    std::cout.flush();
    if (format_ == Format::kCsv) out_.write(kCsvHeader);
    if (format_ == Format::kTable) out_.write(table_header());
    if (format_ == Format::kJson) out_.write("[");
  }
  void write(const Record& r) override {
    switch (format_) {
      case Format::kJsonl: out_.write(to_json(r) + '\n'); break;
      case Format::kJson: out_.write((first_ ? "\n  " : ",\n  ") + to_json(r)); break;
      case Format::kCsv: out_.write(to_csv(r)); break;
      case Format::kTable: out_.write(to_table_row(r)); break;
    }
    first_ = false;
  }

 private:
  void complete() override {
    if (format_ == Format::kJson) out_.write(first_ ? "]\n" : "\n]\n");
    out_.close();
  }
  Format format_;
  OutputFd out_;
  bool first_ = true;
};

// jsonl / csv: one record per write(2), appended; locked against other runs.
class AppendingFileSink : public RecordSink {
 public:
  AppendingFileSink(Format format, const std::string& path, bool resume)
      : format_(format), path_(path), out_(OutputFd::open(path, O_APPEND, path)) {
    lock_output(out_.fd(), path);
    // Truncated only once the lock is ours: a refused run leaves the file alone.
    struct stat st {};
    regular_ = ::fstat(out_.fd(), &st) == 0 && S_ISREG(st.st_mode);
    if (resume) {
      load_existing();
    } else if (regular_ && ::ftruncate(out_.fd(), 0) != 0) {
      throw Error(system_error(path + ": cannot truncate"));
    }
    if (format_ == Format::kCsv && !has_header_) append(kCsvHeader);
  }
  void write(const Record& r) override {
    if (format_ == Format::kCsv && !has_member_columns_ && !r.member.empty())
      throw Error(path_ + ": cannot add tar members to this CSV file: it has no key and member "
                  "columns (write them to a new file)");
    append(format_ == Format::kCsv ? to_csv(r, has_member_columns_) : to_json(r) + "\n");
  }

 private:
  void complete() override {
    if (regular_) check_still_at_path(out_.fd(), path_);
    out_.close();
  }

  // Each record whole or not at all: a write that fails part-way (a full disk) is cut
  // back off the file, so that --resume and readers never meet half a record.
  void append(const std::string& text) {
    if (!regular_) return out_.write(text);
    check_still_at_path(out_.fd(), path_);
    const off_t before = ::lseek(out_.fd(), 0, SEEK_END);
    if (before < 0) throw Error(system_error(path_ + ": cannot seek"));
    try {
      out_.write(text);
    } catch (const Error&) {
      if (::ftruncate(out_.fd(), before) != 0)
        throw Error(system_error(path_ + ": write failed and the partial record could not "
                                         "be cut off"));
      throw;
    }
  }

  std::string read_all() {
    std::string content;
    const int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw Error(system_error(path_ + ": cannot read"));
    char buffer[1 << 16];
    for (ssize_t n; (n = ::read(fd, buffer, sizeof buffer)) != 0;) {
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        ::close(fd);
        throw Error(system_error(path_ + ": cannot read"));
      }
      content.append(buffer, static_cast<size_t>(n));
    }
    ::close(fd);
    return content;
  }

  // Reads the (path, model) keys already written; cuts a torn last record. Refuses a
  // file that is not ours, before anything is appended to it.
  void load_existing() {
    const std::string content = read_all();
    if (content.empty()) return;
    const std::string not_ours = path_ + ": cannot resume: not a musiq " +
                                 (format_ == Format::kCsv ? "CSV" : "JSON Lines") + " file (";
    size_t complete = 0;
    if (format_ == Format::kCsv) {
      const auto records = parse_csv(content, complete);
      if (content.compare(0, std::strlen(kCsvHeaderWithoutMembers), kCsvHeaderWithoutMembers) ==
          0) {
        has_member_columns_ = false;
      } else if (content.compare(0, std::strlen(kCsvHeader), kCsvHeader) != 0) {
        throw Error(not_ours + "its first line is not our header)");
      }
      has_header_ = true;
      const size_t fields = has_member_columns_ ? kCsvFields : kCsvFieldsWithoutMembers;
      for (size_t i = 1; i < records.size(); ++i) {
        if (records[i].size() != fields)
          throw Error(not_ours + "record " + std::to_string(i + 1) + " has " +
                      std::to_string(records[i].size()) + " fields, not " +
                      std::to_string(fields) + ")");
        const std::string member = has_member_columns_ ? records[i][kCsvFields - 1] : "";
        done_.insert({item_identity(records[i][0], member), records[i][1]});
      }
    } else {
      complete = content.rfind('\n') == std::string::npos ? 0 : content.rfind('\n') + 1;
      std::istringstream lines(content.substr(0, complete));
      int64_t number = 0;
      for (std::string line; std::getline(lines, line);) {
        ++number;
        const auto members = parse_flat_json_object(line);
        if (!members || !members->count("path") || !members->count("model"))
          throw Error(not_ours + "line " + std::to_string(number) + " is not a record)");
        const std::string member = members->count("member") ? members->at("member") : "";
        done_.insert({item_identity(members->at("path"), member), members->at("model")});
      }
    }
    if (complete < content.size()) {
      if (::ftruncate(out_.fd(), static_cast<off_t>(complete)) != 0)
        throw Error(system_error(path_ + ": cannot cut the incomplete last record"));
      std::cerr << "musiq: " << path_ << ": dropped an incomplete last record\n";
    }
  }

  Format format_;
  std::string path_;
  OutputFd out_;
  bool regular_ = false;
  bool has_header_ = false;
  bool has_member_columns_ = true;
};

// json / table to a regular file (`path`: symbolic links already followed): written to a
// temporary file beside it, renamed over it by finish(). The file itself, created empty if
// absent, holds the lock that jsonl/csv runs take, so no two runs write one file.
class ReplacingFileSink : public RecordSink {
 public:
  ReplacingFileSink(Format format, const std::string& path, const std::string& name)
      : format_(format),
        path_(path),
        name_(name),
        temp_(path + ".tmp-" + std::to_string(::getpid())),
        locked_(open_locked(path, name, created_)),
        out_(OutputFd::open(temp_, O_TRUNC, name)) {
    out_.write(format_ == Format::kJson ? "[" : table_header());
  }
  ~ReplacingFileSink() override {
    if (renamed_) return;
    std::remove(temp_.c_str());
    if (created_ && locked_.fd() >= 0 && still_at_path()) ::unlink(path_.c_str());
  }
  void write(const Record& r) override {
    out_.write(format_ == Format::kJson ? (first_ ? "\n  " : ",\n  ") + to_json(r)
                                        : to_table_row(r));
    first_ = false;
  }

 private:
  void complete() override {
    if (format_ == Format::kJson) out_.write(first_ ? "]\n" : "\n]\n");
    out_.close();
    check_still_at_path(locked_.fd(), path_);
    if (std::rename(temp_.c_str(), path_.c_str()) != 0)
      throw Error(system_error(name_ + ": cannot move " + temp_ + " into place"));
    renamed_ = true;
  }

  // The output file, opened (created if absent: `created`) and locked.
  static OutputFd open_locked(const std::string& path, const std::string& name, bool& created) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    created = fd >= 0;
    if (fd < 0 && errno == EEXIST) fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) throw Error(system_error(name + ": cannot open for writing"));
    OutputFd out(fd, name, true);
    lock_output(fd, name);
    return out;
  }
  bool still_at_path() const {
    try {
      check_still_at_path(locked_.fd(), path_);
      return true;
    } catch (const Error&) {
      return false;
    }
  }

  Format format_;
  std::string path_, name_, temp_;
  bool created_ = false;
  OutputFd locked_;
  OutputFd out_;
  bool first_ = true, renamed_ = false;
};

// Where json/table output goes for `path`: its symbolic links followed, so that a link is
// written through and never replaced. Throws for a link to nothing.
std::string replacement_target(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_symlink(path, ec)) return path;
  const std::filesystem::path target = std::filesystem::canonical(path, ec);
  if (ec) throw Error(path + ": a symbolic link to a missing file (" + ec.message() + ")");
  return target.string();
}

}  // namespace

Format parse_format(const std::string& name) {
  if (name == "json") return Format::kJson;
  if (name == "jsonl") return Format::kJsonl;
  if (name == "csv") return Format::kCsv;
  if (name == "table") return Format::kTable;
  throw Error("unknown format '" + name + "' (use json, jsonl, csv or table)");
}

std::unique_ptr<RecordSink> RecordSink::open(Format format, const std::string& path, bool resume,
                                             bool overwrite) {
  if (path.empty()) {
    if (resume) throw Error("--resume needs --output FILE");
    return std::make_unique<StreamSink>(format, OutputFd(STDOUT_FILENO, "stdout"));
  }
  if (resume && !can_resume(format))
    throw Error("--resume works with --format jsonl or csv (json and table files are "
                "written whole at the end)");
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw Error(path + ": is a directory");
  if (!resume && !overwrite && std::filesystem::exists(path, ec))
    throw Error(path + ": exists; use --resume to continue it or --overwrite to replace it");
  if (can_resume(format)) return std::make_unique<AppendingFileSink>(format, path, resume);
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
    // A device or a FIFO (/dev/stdout a pipe included) is written in place: nothing is
    // ever renamed over it.
    const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) throw Error(system_error(path + ": cannot open for writing"));
    return std::make_unique<StreamSink>(format, OutputFd(fd, path, true));
  }
  return std::make_unique<ReplacingFileSink>(format, replacement_target(path), path);
}

}  // namespace musiq::cli
