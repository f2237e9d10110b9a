#include "tools/musiq/stop_signals.h"

#include <pthread.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <iostream>

namespace musiq::cli {

sigset_t stop_signal_set() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  return set;
}

StopSignals::StopSignals(std::function<void(int)> stop_now) : stop_now_(std::move(stop_now)) {
  const sigset_t set = stop_signal_set();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  watcher_ = std::thread([this] { watch(); });
}

StopSignals::~StopSignals() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    closed_ = true;
  }
  // Wakes the watcher's sigwait; seeing closed_, it returns without acting.
  pthread_kill(watcher_.native_handle(), SIGTERM);
  watcher_.join();
  const sigset_t set = stop_signal_set();
  pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
}

void StopSignals::watch() {
  const sigset_t set = stop_signal_set();
  for (int received = 0;;) {
    if (sigwait(&set, &received) != 0) continue;
    std::lock_guard<std::mutex> lock(mutex_);
    if (closed_) return;
    const bool now = received == SIGTERM || signal_ != 0;
    signal_ = received;
    if (!now) {
      std::cerr << "\nmusiq: stopping after the images in flight (Ctrl-C again to stop now)\n";
      continue;
    }
    std::thread([received] {
      std::this_thread::sleep_for(kStopDeadline);
      std::_Exit(128 + received);
    }).detach();
    stop_now_(received);
    std::cerr.flush();
    std::_Exit(128 + received);
  }
}

}  // namespace musiq::cli
