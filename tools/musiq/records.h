// Result records and where they go: stdout or a file, as JSON, JSON Lines, CSV or a
// table. File output never leaves a corrupt file behind a killed run:
//  - jsonl and csv are appended one complete line per write(2), and --resume continues
//    them (a torn last line, possible only on power loss, is cut off first);
//  - json and table are written to a temporary file renamed into place at the end.
#pragma once
#include <memory>
#include <set>
#include <string>
#include <utility>

namespace musiq::cli {

struct Record {
  std::string path, model;
  std::string error;  // non-empty: the image failed
  float score = 0;
  std::string device;
  int width = 0, height = 0;
  long long tokens = 0;
  double ms = 0;
  bool random_weights = false;
};

enum class Format { kJson, kJsonl, kCsv, kTable };
Format parse_format(const std::string& name);  // throws musiq::Error

class RecordSink {
 public:
  // `path` empty: stdout. Throws musiq::Error when the file exists and neither `resume`
  // nor `overwrite` is set, or when `resume` is asked of json/table output.
  static std::unique_ptr<RecordSink> open(Format format, const std::string& path, bool resume,
                                          bool overwrite);
  virtual ~RecordSink() = default;

  // (path, model) pairs already in the file being resumed.
  const std::set<std::pair<std::string, std::string>>& done() const { return done_; }
  virtual void write(const Record& record) = 0;
  // Completes the output (closing bracket, rename into place).
  virtual void finish() = 0;

 protected:
  std::set<std::pair<std::string, std::string>> done_;
};

}  // namespace musiq::cli
