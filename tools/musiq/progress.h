// A one-line progress report on stderr (done/total, images/s, ETA), only when stderr is
// a terminal and not --quiet.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace musiq::cli {

class Progress {
 public:
  Progress(int64_t total, bool enabled);
  void update(int64_t done, int64_t failed);  // redraws at most 5 times a second
  void finish(int64_t done, int64_t failed);
  void note(const std::string& line);  // a line on stderr, above the progress line

 private:
  void draw(int64_t done, int64_t failed);
  int64_t total_;
  bool enabled_;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace musiq::cli
