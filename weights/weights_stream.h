// The byte stream in which the isolated HDF5 reader hands a weights file (or the reason
// it is refused) to the process that asked for it (weights/weights.cc): a header record,
// one record per parameter as it is read, an end record; an error record may come at
// any point. Same machine, same build: native byte order. The receiving side trusts
// nothing it reads: every name and shape must be one the config expects, every length is
// checked before it is used.
#pragma once
#include <string>

#include "weights/weights.h"

namespace musiq {

// The sending side. Each call writes one record; a failed write throws musiq::Error.
class WeightsStreamWriter {
 public:
  explicit WeightsStreamWriter(int fd) : fd_(fd) {}
  void header(const std::string& variant, const std::string& source,
              const std::string& config_json, size_t parameter_count);
  void parameter(const std::string& name, const Tensor& value);
  void end();
  void error(const std::string& message);

 private:
  void bytes(const void* data, size_t size);
  template <typename T>
  void value(T v) { bytes(&v, sizeof v); }
  void string(const std::string& s);
  int fd_;
};

// Reads the stream to its end: returns the weights (config parsed from the header, path
// set to `path`), or throws musiq::Error with an error record's message, or naming `path`
// when the stream is malformed.
WeightsFile read_weights_stream(int fd, const std::string& path);

}  // namespace musiq
