#include "weights/isolated_process.h"

#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <exception>

#include "base/error.h"

// Present only in sanitizer builds; libFuzzer uses it to save the input that crashed.
extern "C" void __sanitizer_set_death_callback(void (*callback)(void)) __attribute__((weak));

namespace musiq {
namespace {

// In the child: a fault must end it quietly, not run handlers that belong to the parent
// (a crash reporter, libFuzzer's "save this input"), and must leave no core file behind.
void detach_from_parent_handlers(int cpu_seconds) {
  for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGXCPU, SIGPIPE, SIGALRM,
                  SIGINT, SIGTERM})
    signal(sig, SIG_DFL);
  if (__sanitizer_set_death_callback) __sanitizer_set_death_callback(nullptr);
  const rlimit no_core{0, 0};
  setrlimit(RLIMIT_CORE, &no_core);
  const rlimit cpu{static_cast<rlim_t>(cpu_seconds), static_cast<rlim_t>(cpu_seconds) + 1};
  setrlimit(RLIMIT_CPU, &cpu);
}

std::string describe_exit(int status, int cpu_seconds) {
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    if (sig == SIGXCPU || sig == SIGKILL)
      return "gave up after " + std::to_string(cpu_seconds) +
             " s of CPU time (the file makes the reader loop)";
    return std::string("the reader crashed (") + strsignal(sig) + ")";
  }
  return "the reader failed (exit status " + std::to_string(WEXITSTATUS(status)) + ")";
}

}  // namespace

void run_isolated(const std::string& what, const std::function<void(int)>& produce,
                  const std::function<void(int)>& consume, const IsolationLimits& limits) {
  int fds[2];
  if (pipe(fds) != 0) throw Error(what + ": cannot create a pipe: " + std::strerror(errno));
  const pid_t pid = fork();
  if (pid < 0) {
    const int err = errno;
    close(fds[0]);
    close(fds[1]);
    throw Error(what + ": cannot start the reader process: " + std::strerror(err));
  }
  if (pid == 0) {
    close(fds[0]);
    detach_from_parent_handlers(limits.cpu_seconds);
    int status = 0;
    try {
      produce(fds[1]);
    } catch (...) {
      status = 1;
    }
    _exit(status);  // no atexit handlers, no flushing of the parent's stdio buffers
  }
  close(fds[1]);
  std::exception_ptr consume_error;
  try {
    consume(fds[0]);
  } catch (...) {
    consume_error = std::current_exception();
  }
  close(fds[0]);  // a child still writing now gets SIGPIPE and ends
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) throw Error(what + ": lost the reader process: " + std::strerror(errno));
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    // Ended by our own close() after consume() gave up: consume()'s error says why.
    if (consume_error && WIFSIGNALED(status) && WTERMSIG(status) == SIGPIPE)
      std::rethrow_exception(consume_error);
    throw Error(what + ": " + describe_exit(status, limits.cpu_seconds));
  }
  if (consume_error) std::rethrow_exception(consume_error);
}

}  // namespace musiq
