// Ctrl-C and SIGTERM during a batch run. The first SIGINT asks the run to stop after the
// images in flight, one packed batch (and says so at once); a second SIGINT, or a SIGTERM,
// stops it now:
// `stop_now` runs on a watcher thread while the model may still be busy, must leave the
// output valid, and the process then exits with 128 + the signal number. Doing this on
// a watcher thread bounds the delay by a write, not by the image in flight (a large one
// takes minutes on the CPU). A write can block for ever (stdout a pipe nobody reads), so
// the process exits kStopDeadline after the signal whether or not stop_now has returned;
// stop_now should give up waiting for the output well before (kOutputWait).
#pragma once
#include <csignal>

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <thread>

namespace musiq::cli {

inline constexpr std::chrono::milliseconds kStopDeadline{900};
inline constexpr std::chrono::milliseconds kOutputWait{400};

// SIGINT and SIGTERM: the signals that stop a run (musiq score) or a server (musiq serve).
sigset_t stop_signal_set();

class StopSignals {
 public:
  // Blocks SIGINT and SIGTERM in the calling thread and every thread it starts later
  // (so only the watcher receives them): construct before starting workers.
  explicit StopSignals(std::function<void(int signal)> stop_now);
  ~StopSignals();  // no more stop_now after this returns; restores the signal mask

  bool stop_requested() const { return signal_ != 0; }
  int signal() const { return signal_; }

 private:
  void watch();

  std::function<void(int)> stop_now_;
  std::atomic<int> signal_{0};
  std::mutex mutex_;  // held by stop_now; the destructor takes it to end the watcher
  bool closed_ = false;
  std::thread watcher_;
};

}  // namespace musiq::cli
