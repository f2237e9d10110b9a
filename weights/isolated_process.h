// Runs a piece of work in a forked child that hands back nothing but bytes on a pipe, so
// that a crash, a leak or an endless loop in a library it calls (libhdf5 on a damaged
// file) ends that child, never this process.
#pragma once
#include <functional>
#include <string>

namespace musiq {

struct IsolationLimits {
  // CPU time the child may use before the kernel stops it (SIGXCPU, then SIGKILL).
  // Wall time is not limited: a slow disk is not a fault.
  int cpu_seconds = 60;
};

// Forks; the child runs produce(write_fd) and exits, the parent runs consume(read_fd)
// meanwhile and then reaps the child. Throws musiq::Error "WHAT: REASON" when the child
// does not exit cleanly (killed by a signal, over its CPU limit, non-zero status), even
// when consume() also failed on the cut-short stream; otherwise consume()'s own
// exception, if any, passes through. produce() must report its failures in the stream:
// an exception escaping it ends the child with status 1. The child leaves the parent's
// crash handlers (and a sanitizer's death callback) behind and writes no core file.
void run_isolated(const std::string& what, const std::function<void(int write_fd)>& produce,
                  const std::function<void(int read_fd)>& consume,
                  const IsolationLimits& limits = {});

}  // namespace musiq
