#include "weights/weights_stream.h"

#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <map>
#include <vector>

#include "base/error.h"
#include "weights/param_table.h"

namespace musiq {
namespace {

enum Record : uint8_t { kHeader = 'H', kParameter = 'P', kEnd = 'Z', kError = 'E' };
constexpr uint32_t kMaxStringBytes = 1 << 20;
constexpr uint32_t kMaxRank = 8;

class PipeReader {
 public:
  PipeReader(int fd, const std::string& path) : fd_(fd), path_(path) {}
  [[noreturn]] void malformed(const std::string& what) const {
    throw Error(path_ + ": the weights reader process sent a malformed stream (" + what + ")");
  }
  void bytes(void* data, size_t size) {
    char* p = static_cast<char*>(data);
    while (size > 0) {
      const ssize_t n = ::read(fd_, p, size);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) malformed(std::string("read failed: ") + std::strerror(errno));
      if (n == 0) malformed("it ends early");
      p += n;
      size -= static_cast<size_t>(n);
    }
  }
  template <typename T>
  T value() {
    T v;
    bytes(&v, sizeof v);
    return v;
  }
  std::string string() {
    const uint32_t size = value<uint32_t>();
    if (size > kMaxStringBytes) malformed("a string of " + std::to_string(size) + " bytes");
    std::string s(size, '\0');
    bytes(s.data(), size);
    return s;
  }
  // The next record's kind; an error record is thrown as the error it carries.
  Record next_record() {
    const uint8_t kind = value<uint8_t>();
    if (kind == kError) throw Error(string());
    return static_cast<Record>(kind);
  }
  bool at_end() {
    char c;
    ssize_t n;
    while ((n = ::read(fd_, &c, 1)) < 0 && errno == EINTR) {}
    return n == 0;
  }

 private:
  int fd_;
  const std::string& path_;
};

// One parameter, accepted only under a name and shape the config expects, once.
void read_parameter(PipeReader& in, const std::map<std::string, std::vector<int64_t>>& expected,
                    WeightsFile& w) {
  const std::string name = in.string();
  const auto spec = expected.find(name);
  if (spec == expected.end()) in.malformed("unexpected parameter '" + name + "'");
  if (w.params.count(name)) in.malformed("parameter '" + name + "' sent twice");
  const uint32_t rank = in.value<uint32_t>();
  if (rank > kMaxRank) in.malformed("rank " + std::to_string(rank));
  Tensor t;
  t.shape.resize(rank);
  for (int64_t& d : t.shape) d = in.value<int64_t>();
  if (t.shape != spec->second) in.malformed("parameter '" + name + "' has the wrong shape");
  t.data.resize(static_cast<size_t>(t.numel()));
  in.bytes(t.data.data(), t.data.size() * sizeof(float));
  w.params.emplace(name, std::move(t));
}

}  // namespace

void WeightsStreamWriter::bytes(const void* data, size_t size) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd_, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw Error(std::string("weights stream: write failed: ") + std::strerror(errno));
    p += n;
    size -= static_cast<size_t>(n);
  }
}

void WeightsStreamWriter::string(const std::string& s) {
  value(static_cast<uint32_t>(s.size()));
  bytes(s.data(), s.size());
}

void WeightsStreamWriter::header(const std::string& variant, const std::string& source,
                                 const std::string& config_json, size_t parameter_count) {
  value(kHeader);
  string(variant);
  string(source);
  string(config_json);
  value(static_cast<uint32_t>(parameter_count));
}

void WeightsStreamWriter::parameter(const std::string& name, const Tensor& t) {
  value(kParameter);
  string(name);
  value(static_cast<uint32_t>(t.shape.size()));
  for (int64_t d : t.shape) value(d);
  bytes(t.data.data(), t.data.size() * sizeof(float));
}

void WeightsStreamWriter::end() { value(kEnd); }

void WeightsStreamWriter::error(const std::string& message) {
  value(kError);
  string(message);
}

WeightsFile read_weights_stream(int fd, const std::string& path) {
  PipeReader in(fd, path);
  if (in.next_record() != kHeader) in.malformed("no header");
  WeightsFile w;
  w.path = path;
  w.variant = in.string();
  w.source = in.string();
  w.config = parse_model_config(in.string(), path);
  std::map<std::string, std::vector<int64_t>> expected;
  for (const ParamSpec& spec : expected_params(w.config)) expected[spec.name] = spec.shape;
  const uint32_t count = in.value<uint32_t>();
  if (count != expected.size())
    in.malformed(std::to_string(count) + " parameters where the config has " +
                 std::to_string(expected.size()));
  for (uint32_t i = 0; i < count; ++i) {
    if (in.next_record() != kParameter) in.malformed("a parameter record is missing");
    read_parameter(in, expected, w);
  }
  if (in.next_record() != kEnd || !in.at_end()) in.malformed("no end after the last parameter");
  return w;
}

}  // namespace musiq
