// One exception type for every failure the engine reports to its user, and the one
// mapping of any exception to the kind and one-line message the front ends report: the C
// API's status codes, the CLI's records and exit message, the server's HTTP statuses and
// the Python module's per-image errors all start from describe_exception.
#pragma once
#include <exception>
#include <stdexcept>
#include <string>

namespace musiq {

// The message is a complete one-line sentence, naming the file or object at fault.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

enum class ErrorKind {
  kError,        // a musiq::Error: the input, weights or device at fault, as its message says
  kOutOfMemory,  // a std::bad_alloc
  kInternal,     // any other exception: a bug
};

struct ErrorReport {
  ErrorKind kind = ErrorKind::kError;
  std::string message;  // one line
};

// What `failure` (not null; in a catch (...), std::current_exception()) is. A musiq::Error's
// message is its own, since it names what failed; the others read
// "SUBJECT: out of memory while DOING" or "SUBJECT: internal error while DOING: WHAT",
// "SUBJECT: " and " while DOING" only where given.
ErrorReport describe_exception(std::exception_ptr failure, const std::string& subject = "",
                               const std::string& doing = "");

}  // namespace musiq
