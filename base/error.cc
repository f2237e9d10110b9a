#include "base/error.h"

#include <new>

namespace musiq {

ErrorReport describe_exception(std::exception_ptr failure, const std::string& subject,
                               const std::string& doing) {
  const std::string prefix = subject.empty() ? "" : subject + ": ";
  const std::string during = doing.empty() ? "" : " while " + doing;
  try {
    std::rethrow_exception(failure);
  } catch (const Error& e) {
    return {ErrorKind::kError, e.what()};
  } catch (const std::bad_alloc&) {
    return {ErrorKind::kOutOfMemory, prefix + "out of memory" + during};
  } catch (const std::exception& e) {
    return {ErrorKind::kInternal, prefix + "internal error" + during + ": " + e.what()};
  } catch (...) {
    return {ErrorKind::kInternal, prefix + "internal error" + during + ": unknown exception"};
  }
}

}  // namespace musiq
