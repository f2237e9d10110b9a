// Thin RAII layer over the HDF5 C API: every call's status is checked and turned
// into a musiq::Error naming the file and the object.
#pragma once
#include <hdf5.h>

#include <cstdint>
#include <string>
#include <vector>

#include "base/tensor.h"

namespace musiq {

class Hdf5Id {
 public:
  Hdf5Id() = default;
  Hdf5Id(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
  Hdf5Id(Hdf5Id&& o) noexcept : id_(o.id_), close_(o.close_) { o.id_ = -1; }
  Hdf5Id& operator=(Hdf5Id&& o) noexcept;
  Hdf5Id(const Hdf5Id&) = delete;
  Hdf5Id& operator=(const Hdf5Id&) = delete;
  ~Hdf5Id();
  hid_t get() const { return id_; }

 private:
  hid_t id_ = -1;
  herr_t (*close_)(hid_t) = nullptr;
};

// A file opened for reading.
class Hdf5Reader {
 public:
  explicit Hdf5Reader(const std::string& path);
  const std::string& path() const { return path_; }

  bool has_attribute(const std::string& name) const;
  std::string string_attribute(const std::string& name) const;
  int64_t int_attribute(const std::string& name) const;

  // Every dataset path under the root, without a leading slash, sorted.
  std::vector<std::string> dataset_names() const;
  std::vector<int64_t> dataset_shape(const std::string& name) const;
  // Reads a floating-point dataset as float32; throws if it is not float32.
  Tensor read_float32(const std::string& name) const;
  // Reads any numeric dataset converted to the requested native type.
  std::vector<int32_t> read_int32(const std::string& name) const;
  std::vector<int64_t> read_int64(const std::string& name) const;
  std::vector<float> read_floats(const std::string& name) const;
  std::vector<double> read_doubles(const std::string& name) const;
  std::vector<uint8_t> read_uint8(const std::string& name) const;

 private:
  Hdf5Id open_dataset(const std::string& name) const;
  // The whole dataset converted by HDF5 to the memory type matching T.
  template <typename T>
  std::vector<T> read_as(const std::string& name, hid_t mem_type) const;
  std::string path_;
  Hdf5Id file_;
};

// A file written atomically: data goes to PATH.tmp-PID, renamed over PATH on commit().
// A symbolic link at PATH is written through; anything at PATH but a regular file is
// refused (musiq::Error), never replaced.
class Hdf5Writer {
 public:
  explicit Hdf5Writer(const std::string& path);
  ~Hdf5Writer();  // removes the temporary file if commit() was not reached
  void write_float32(const std::string& name, const std::vector<int64_t>& shape,
                     const float* data);
  void write_int32(const std::string& name, const std::vector<int64_t>& shape,
                   const int32_t* data);
  void write_uint8(const std::string& name, const std::vector<int64_t>& shape,
                   const uint8_t* data);
  void commit();

 private:
  void write(const std::string& name, const std::vector<int64_t>& shape, hid_t type,
             const void* data);
  std::string path_, temp_path_;
  Hdf5Id file_;
  bool committed_ = false;
};

}  // namespace musiq
