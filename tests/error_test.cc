// describe_exception (base/error.h): the one mapping of an exception to the kind and
// message that the C API, the CLI, the server and Python report.
#include <gtest/gtest.h>

#include <new>
#include <stdexcept>
#include <string>

#include "base/error.h"

namespace musiq {
namespace {

template <class Exception>
ErrorReport report_of(Exception thrown, const std::string& subject = "",
                      const std::string& doing = "") {
  return describe_exception(std::make_exception_ptr(thrown), subject, doing);
}

TEST(DescribeException, MusiqErrorKeepsItsOwnMessage) {
  const ErrorReport r = report_of(Error("a.jpg: not an image"), "a.jpg", "decoding");
  EXPECT_EQ(r.kind, ErrorKind::kError);
  EXPECT_EQ(r.message, "a.jpg: not an image");
}

TEST(DescribeException, OutOfMemoryIsWordedOneWay) {
  EXPECT_EQ(report_of(std::bad_alloc()).kind, ErrorKind::kOutOfMemory);
  EXPECT_EQ(report_of(std::bad_alloc()).message, "out of memory");
  EXPECT_EQ(report_of(std::bad_alloc(), "a.jpg").message, "a.jpg: out of memory");
  EXPECT_EQ(report_of(std::bad_alloc(), "a.jpg", "decoding").message,
            "a.jpg: out of memory while decoding");
  EXPECT_EQ(report_of(std::bad_array_new_length()).kind, ErrorKind::kOutOfMemory);
}

TEST(DescribeException, OtherExceptionsAreInternalErrors) {
  // Any standard exception but musiq's own is a bug, never the input's fault.
  const ErrorReport r = report_of(std::invalid_argument("conv2d: bad"), "a.jpg", "decoding");
  EXPECT_EQ(r.kind, ErrorKind::kInternal);
  EXPECT_EQ(r.message, "a.jpg: internal error while decoding: conv2d: bad");
  EXPECT_EQ(report_of(std::runtime_error("x")).message, "internal error: x");
}

TEST(DescribeException, UnknownExceptionsAreInternalErrors) {
  const ErrorReport r = report_of(42, "a.jpg");
  EXPECT_EQ(r.kind, ErrorKind::kInternal);
  EXPECT_EQ(r.message, "a.jpg: internal error: unknown exception");
}

}  // namespace
}  // namespace musiq
