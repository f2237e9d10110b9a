// run_isolated: the child's bytes arrive, and every way a child can fail becomes one
// musiq::Error in the parent, which carries on.
#include <signal.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "base/error.h"
#include "tests/test_util.h"
#include "weights/isolated_process.h"

namespace musiq {
namespace {

void write_all(int fd, const std::string& s) {
  ASSERT_EQ(::write(fd, s.data(), s.size()), static_cast<ssize_t>(s.size()));
}

std::string read_all(int fd) {
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  return out;
}

// The error run_isolated throws for `produce`, or "" if it threw none.
std::string failure_of(const std::function<void(int)>& produce, int cpu_seconds = 10) {
  IsolationLimits limits;
  limits.cpu_seconds = cpu_seconds;
  try {
    run_isolated("job", produce, [](int fd) { read_all(fd); }, limits);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(IsolatedProcess, BytesArrive) {
  const std::string sent(1 << 20, 'x');  // more than a pipe buffer holds
  std::string received;
  run_isolated("job", [&](int fd) { write_all(fd, sent + "end"); },
               [&](int fd) { received = read_all(fd); });
  EXPECT_EQ(received, sent + "end");
}

TEST(IsolatedProcess, ChildStateStaysInTheChild) {
  int value = 1;
  run_isolated("job", [&](int) { value = 2; }, [](int fd) { read_all(fd); });
  EXPECT_EQ(value, 1);
}

TEST(IsolatedProcess, CrashIsAnError) {
  const std::string msg = failure_of([](int) { raise(SIGSEGV); });
  EXPECT_EQ(msg.rfind("job: ", 0), 0u) << msg;
  EXPECT_NE(msg.find("crashed"), std::string::npos) << msg;
  EXPECT_NE(msg.find(strsignal(SIGSEGV)), std::string::npos) << msg;
}

TEST(IsolatedProcess, AbortIsAnError) {
  const std::string msg = failure_of([](int) { abort(); });
  EXPECT_NE(msg.find("crashed"), std::string::npos) << msg;
}

TEST(IsolatedProcess, EndlessLoopStopsAtTheCpuLimit) {
  const std::string msg = failure_of(
      [](int) {
        volatile unsigned long spin = 0;
        for (;;) spin = spin + 1;
      },
      1);
  EXPECT_NE(msg.find("1 s of CPU time"), std::string::npos) << msg;
}

TEST(IsolatedProcess, ExceptionInTheChildIsAnError) {
  const std::string msg = failure_of([](int) { throw Error("inside"); });
  EXPECT_NE(msg.find("exit status 1"), std::string::npos) << msg;
}

TEST(IsolatedProcess, ConsumerErrorPassesThroughAndTheWriterEnds) {
  // The consumer gives up after one byte while the child has megabytes left to write:
  // the child must end (SIGPIPE) and the consumer's own error must be the one reported.
  try {
    run_isolated("job", [](int fd) {
          const std::string chunk(1 << 16, 'y');
          for (int i = 0; i < 1000; ++i) write_all(fd, chunk);
        },
        [](int fd) {
          char c;
          ASSERT_EQ(::read(fd, &c, 1), 1);
          throw Error("consumer gave up");
        });
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "consumer gave up");
  }
}

}  // namespace
}  // namespace musiq
