// Result records and where they go: stdout or a file, as JSON, JSON Lines, CSV or a
// table. Every write is checked (a failure throws musiq::Error naming the reason), and
// file output never leaves a corrupt file behind a killed run:
//  - jsonl and csv are appended one complete record per write(2); a write that fails part
//    way (a full disk) is cut back off, and --resume continues them (a torn last record,
//    left only by power loss or a kill in mid-write, is cut off first);
//  - json and table are written to a temporary file renamed into place at the end;
//    symbolic links are written through, and a device or FIFO is written in place, never
//    replaced.
// Every format locks the output file (flock) while a run writes it, so a second run on
// it is refused; a run whose file another program replaces or removes fails (exit 2).
#pragma once
#include <memory>
#include <set>
#include <string>
#include <utility>

namespace musiq::cli {

struct Record {
  std::string path, model;
  std::string member;   // the image's member name when `path` is a tar shard, else ""

  std::string error;    // non-empty: the image failed
  std::string warning;  // the decoder's warning about a scored image, if any
  float score = 0;
  std::string device;
  std::string precision = "fp32";  // the arithmetic that scored it (docs/precision.md)
  bool gpu_available = false;  // a usable GPU was found, whichever device scored
  int width = 0, height = 0;   // as decoded
  // Set when --target-size resized the image: the size the model scored it at.
  int scored_width = 0, scored_height = 0;
  long long tokens = 0;
  double ms = 0;
  bool random_weights = false;
};

enum class Format { kJson, kJsonl, kCsv, kTable };
Format parse_format(const std::string& name);  // throws musiq::Error
inline bool can_resume(Format f) { return f == Format::kJsonl || f == Format::kCsv; }

class RecordSink {
 public:
  // `path` empty: stdout. Throws musiq::Error when the file exists and neither `resume`
  // nor `overwrite` is set, when `resume` is asked of json/table output or of a file
  // that is not ours, when another run holds the file, or when it cannot be written.
  static std::unique_ptr<RecordSink> open(Format format, const std::string& path, bool resume,
                                          bool overwrite);
  virtual ~RecordSink() = default;

  // (item_identity(path, member), model) pairs already in the file being resumed.
  const std::set<std::pair<std::string, std::string>>& done() const { return done_; }
  virtual void write(const Record& record) = 0;
  // Completes the output (closing bracket, flush, close, rename into place). Only the
  // first call does anything.
  void finish() {
    if (!finished_) complete();
    finished_ = true;
  }

 protected:
  virtual void complete() = 0;
  std::set<std::pair<std::string, std::string>> done_;

 private:
  bool finished_ = false;
};

}  // namespace musiq::cli
