#include "tools/musiq/progress.h"

#include <unistd.h>

#include <cstdio>

namespace musiq::cli {
namespace {

using Clock = std::chrono::steady_clock;

void format_duration(double seconds, char* out, size_t size) {
  const long s = static_cast<long>(seconds + 0.5);
  if (s >= 3600) {
    std::snprintf(out, size, "%ldh%02ldm", s / 3600, s / 60 % 60);
  } else {
    std::snprintf(out, size, "%ldm%02lds", s / 60, s % 60);
  }
}

}  // namespace

Progress::Progress(int64_t total, bool enabled)
    : total_(total), enabled_(enabled && isatty(STDERR_FILENO)), start_(Clock::now()) {}

void Progress::update(int64_t done, int64_t failed) {
  if (!enabled_) return;
  const auto now = Clock::now();
  if (now - last_draw_ < std::chrono::milliseconds(200)) return;
  last_draw_ = now;
  draw(done, failed);
}

void Progress::finish(int64_t done, int64_t failed) {
  if (!enabled_) return;
  draw(done, failed);
  std::fputc('\n', stderr);
}

void Progress::note(const std::string& line) {
  std::fprintf(stderr, "%s%s\n", enabled_ ? "\r\033[K" : "", line.c_str());
}

void Progress::draw(int64_t done, int64_t failed) {
  const double elapsed = std::chrono::duration<double>(Clock::now() - start_).count();
  const double rate = elapsed > 0 ? done / elapsed : 0;
  char eta[32] = "?";
  if (rate > 0) format_duration((total_ - done) / rate, eta, sizeof eta);
  std::fprintf(stderr, "\r\033[K%lld/%lld images  %.2f img/s  ETA %s", static_cast<long long>(done),
               static_cast<long long>(total_), rate, eta);
  if (failed) std::fprintf(stderr, "  %lld failed", static_cast<long long>(failed));
  std::fflush(stderr);
}

}  // namespace musiq::cli
