#include "tools/musiq/records.h"

#include <fcntl.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

#include "engine/error.h"

namespace musiq::cli {
namespace {

constexpr const char* kRandomNote =
    "random demo weights (musiq-make-test-model): this score is not meaningful";
constexpr const char* kCsvHeader = "path,model,score,device,width,height,tokens,ms,error,note\n";

nlohmann::json to_json(const Record& r) {
  nlohmann::json j = {{"path", r.path}, {"model", r.model}};
  if (!r.error.empty()) {
    j["error"] = r.error;
    return j;
  }
  j["score"] = r.score;
  j["device"] = r.device;
  j["width"] = r.width;
  j["height"] = r.height;
  j["tokens"] = r.tokens;
  j["ms"] = std::round(r.ms * 10) / 10;
  if (r.random_weights) j["note"] = kRandomNote;
  return j;
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

std::string to_csv(const Record& r) {
  std::ostringstream s;
  s << csv_field(r.path) << ',' << csv_field(r.model) << ',';
  if (r.error.empty()) {
    s << std::setprecision(9) << r.score << ',' << r.device << ',' << r.width << ','
      << r.height << ',' << r.tokens << ',' << std::fixed << std::setprecision(1) << r.ms
      << ",," << (r.random_weights ? csv_field(kRandomNote) : "");
  } else {
    s << ",,,,,," << csv_field(r.error) << ',';
  }
  s << '\n';
  return s.str();
}

std::string to_table_row(const Record& r) {
  std::ostringstream s;
  if (r.error.empty()) {
    s << std::fixed << std::setprecision(3) << std::setw(10) << r.score << "  " << std::left
      << std::setw(8) << r.model << std::right << std::setw(11)
      << (std::to_string(r.width) + "x" + std::to_string(r.height)) << std::setw(7) << r.tokens
      << std::setprecision(0) << std::setw(8) << r.ms << "  " << r.path
      << (r.random_weights ? "  (random weights: not meaningful)" : "");
  } else {
    s << std::setw(10) << "FAILED" << "  " << std::left << std::setw(8) << r.model << "  "
      << r.error;
  }
  s << '\n';
  return s.str();
}

std::string table_header() {
  return "     score  model         size tokens      ms  path\n";
}

// The first two CSV fields of a line (path, model), honouring quotes.
std::pair<std::string, std::string> csv_key(const std::string& line) {
  std::vector<std::string> fields(1);
  bool quoted = false;
  for (size_t i = 0; i < line.size() && fields.size() <= 2; ++i) {
    const char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
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
    } else {
      fields.back() += c;
    }
  }
  fields.resize(2);
  return {fields[0], fields[1]};
}

void write_all(int fd, const std::string& text, const std::string& path) {
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0) throw Error(path + ": write failed (disk full?)");
    done += static_cast<size_t>(n);
  }
}

class StdoutSink : public RecordSink {
 public:
  explicit StdoutSink(Format format) : format_(format) {
    if (format_ == Format::kCsv) std::cout << kCsvHeader;
    if (format_ == Format::kTable) std::cout << table_header();
    if (format_ == Format::kJson) std::cout << "[";
    std::cout << std::flush;
  }
  void write(const Record& r) override {
    switch (format_) {
      case Format::kJsonl: std::cout << to_json(r).dump() << '\n'; break;
      case Format::kJson: std::cout << (first_ ? "\n  " : ",\n  ") << to_json(r).dump(); break;
      case Format::kCsv: std::cout << to_csv(r); break;
      case Format::kTable: std::cout << to_table_row(r); break;
    }
    first_ = false;
    std::cout << std::flush;
  }
  void finish() override {
    if (format_ == Format::kJson) std::cout << (first_ ? "]\n" : "\n]\n") << std::flush;
  }

 private:
  Format format_;
  bool first_ = true;
};

// jsonl / csv: one line per record, appended with a single write(2).
class AppendingFileSink : public RecordSink {
 public:
  AppendingFileSink(Format format, const std::string& path, bool resume) : format_(format), path_(path) {
    if (resume && std::filesystem::exists(path)) load_existing();
    fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | (resume ? 0 : O_TRUNC), 0644);
    if (fd_ < 0) throw Error(path + ": cannot open for writing");
    if (format_ == Format::kCsv && !has_header_) write_all(fd_, kCsvHeader, path_);
  }
  ~AppendingFileSink() override {
    if (fd_ >= 0) ::close(fd_);
  }
  void write(const Record& r) override {
    write_all(fd_, format_ == Format::kCsv ? to_csv(r) : to_json(r).dump() + "\n", path_);
  }
  void finish() override {
    if (::fsync(fd_) != 0) throw Error(path_ + ": cannot flush to disk");
  }

 private:
  // Reads the (path, model) keys already written; cuts a torn last line.
  void load_existing() {
    std::ifstream in(path_, std::ios::binary);
    std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const size_t complete = content.rfind('\n') == std::string::npos ? 0 : content.rfind('\n') + 1;
    if (complete < content.size()) {
      std::filesystem::resize_file(path_, complete);
      std::cerr << "musiq: " << path_ << ": dropped an incomplete last line\n";
    }
    std::istringstream lines(content.substr(0, complete));
    for (std::string line; std::getline(lines, line);) {
      if (format_ == Format::kCsv) {
        if (line + "\n" == kCsvHeader) {
          has_header_ = true;
          continue;
        }
        done_.insert(csv_key(line));
      } else {
        const auto j = nlohmann::json::parse(line, nullptr, false);
        if (j.is_discarded() || !j.contains("path") || !j.contains("model"))
          throw Error(path_ + ": cannot resume: a line is not a musiq JSON record");
        done_.insert({j["path"].get<std::string>(), j["model"].get<std::string>()});
      }
    }
  }

  Format format_;
  std::string path_;
  int fd_ = -1;
  bool has_header_ = false;
};

// json / table: buffered in a temporary file, renamed into place by finish().
class ReplacingFileSink : public RecordSink {
 public:
  ReplacingFileSink(Format format, const std::string& path)
      : format_(format), path_(path), temp_(path + ".tmp-" + std::to_string(::getpid())) {
    out_.open(temp_, std::ios::binary | std::ios::trunc);
    if (!out_) throw Error(path + ": cannot write " + temp_);
    out_ << (format_ == Format::kJson ? "[" : table_header());
  }
  ~ReplacingFileSink() override {
    if (!finished_) {
      out_.close();
      std::remove(temp_.c_str());
    }
  }
  void write(const Record& r) override {
    if (format_ == Format::kJson) {
      out_ << (first_ ? "\n  " : ",\n  ") << to_json(r).dump();
    } else {
      out_ << to_table_row(r);
    }
    first_ = false;
  }
  void finish() override {
    if (format_ == Format::kJson) out_ << (first_ ? "]\n" : "\n]\n");
    out_.close();
    if (!out_ || std::rename(temp_.c_str(), path_.c_str()) != 0)
      throw Error(path_ + ": cannot write the output file");
    finished_ = true;
  }

 private:
  Format format_;
  std::string path_, temp_;
  std::ofstream out_;
  bool first_ = true, finished_ = false;
};

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
  const bool appendable = format == Format::kJsonl || format == Format::kCsv;
  if (path.empty()) {
    if (resume) throw Error("--resume needs --output FILE");
    return std::make_unique<StdoutSink>(format);
  }
  if (resume && !appendable)
    throw Error("--resume works with --format jsonl or csv (json and table files are "
                "written whole at the end)");
  if (!resume && !overwrite && std::filesystem::exists(path))
    throw Error(path + ": exists; use --resume to continue it or --overwrite to replace it");
  if (appendable) return std::make_unique<AppendingFileSink>(format, path, resume);
  return std::make_unique<ReplacingFileSink>(format, path);
}

}  // namespace musiq::cli
