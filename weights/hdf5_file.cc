#include "weights/hdf5_file.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "base/error.h"

namespace musiq {
namespace {

// HDF5 prints its own error stack to stderr by default; we report errors ourselves.
void silence_hdf5() {
  static const bool done = [] {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    return true;
  }();
  (void)done;
}

std::vector<int64_t> space_shape(hid_t space) {
  const int rank = H5Sget_simple_extent_ndims(space);
  if (rank < 0) return {};
  std::vector<hsize_t> dims(rank);
  H5Sget_simple_extent_dims(space, dims.data(), nullptr);
  return std::vector<int64_t>(dims.begin(), dims.end());
}

// Link iteration plus H5Iget_type: the same calls in HDF5 1.10 and 1.12+.
herr_t collect_dataset(hid_t group, const char* name, const H5L_info_t*, void* out) {
  const hid_t object = H5Oopen(group, name, H5P_DEFAULT);
  if (object < 0) return -1;
  if (H5Iget_type(object) == H5I_DATASET)
    static_cast<std::vector<std::string>*>(out)->push_back(name);
  H5Oclose(object);
  return 0;
}

}  // namespace

Hdf5Id& Hdf5Id::operator=(Hdf5Id&& o) noexcept {
  if (this != &o) {
    if (id_ >= 0 && close_) close_(id_);
    id_ = o.id_;
    close_ = o.close_;
    o.id_ = -1;
  }
  return *this;
}

Hdf5Id::~Hdf5Id() {
  if (id_ >= 0 && close_) close_(id_);
}

std::string shape_to_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ',';
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

Hdf5Reader::Hdf5Reader(const std::string& path) : path_(path) {
  silence_hdf5();
  if (FILE* f = std::fopen(path.c_str(), "rb")) {
    std::fclose(f);
  } else {
    throw Error(path + ": cannot open file for reading");
  }
  if (H5Fis_hdf5(path.c_str()) <= 0)
    throw Error(path + ": not an HDF5 file (or truncated)");
  hid_t id = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (id < 0) throw Error(path + ": HDF5 could not open the file (truncated or damaged?)");
  file_ = Hdf5Id(id, H5Fclose);
}

bool Hdf5Reader::has_attribute(const std::string& name) const {
  return H5Aexists(file_.get(), name.c_str()) > 0;
}

std::string Hdf5Reader::string_attribute(const std::string& name) const {
  if (!has_attribute(name)) throw Error(path_ + ": missing root attribute '" + name + "'");
  Hdf5Id attr(H5Aopen(file_.get(), name.c_str(), H5P_DEFAULT), H5Aclose);
  Hdf5Id type(H5Aget_type(attr.get()), H5Tclose);
  if (attr.get() < 0 || type.get() < 0 || H5Tget_class(type.get()) != H5T_STRING)
    throw Error(path_ + ": root attribute '" + name + "' is not a string");
  if (H5Tis_variable_str(type.get()) > 0) {
    char* value = nullptr;
    if (H5Aread(attr.get(), type.get(), &value) < 0 || !value)
      throw Error(path_ + ": cannot read root attribute '" + name + "'");
    std::string s(value);
    H5free_memory(value);
    return s;
  }
  const size_t size = H5Tget_size(type.get());
  std::string s(size, '\0');
  if (H5Aread(attr.get(), type.get(), s.data()) < 0)
    throw Error(path_ + ": cannot read root attribute '" + name + "'");
  s.resize(std::min(s.size(), s.find('\0')));
  return s;
}

int64_t Hdf5Reader::int_attribute(const std::string& name) const {
  if (!has_attribute(name)) throw Error(path_ + ": missing root attribute '" + name + "'");
  Hdf5Id attr(H5Aopen(file_.get(), name.c_str(), H5P_DEFAULT), H5Aclose);
  Hdf5Id type(H5Aget_type(attr.get()), H5Tclose);
  Hdf5Id space(H5Aget_space(attr.get()), H5Sclose);
  if (attr.get() < 0 || type.get() < 0 || H5Tget_class(type.get()) != H5T_INTEGER ||
      H5Sget_simple_extent_npoints(space.get()) != 1)
    throw Error(path_ + ": root attribute '" + name + "' is not a single integer");
  int64_t value = 0;
  if (H5Aread(attr.get(), H5T_NATIVE_INT64, &value) < 0)
    throw Error(path_ + ": cannot read root attribute '" + name + "'");
  return value;
}

std::vector<std::string> Hdf5Reader::dataset_names() const {
  std::vector<std::string> names;
  if (H5Lvisit(file_.get(), H5_INDEX_NAME, H5_ITER_INC, collect_dataset, &names) < 0)
    throw Error(path_ + ": cannot list the datasets (damaged file?)");
  std::sort(names.begin(), names.end());
  return names;
}

Hdf5Id Hdf5Reader::open_dataset(const std::string& name) const {
  if (H5Lexists(file_.get(), name.c_str(), H5P_DEFAULT) <= 0)
    throw Error(path_ + ": missing dataset '" + name + "'");
  hid_t id = H5Dopen2(file_.get(), name.c_str(), H5P_DEFAULT);
  if (id < 0) throw Error(path_ + ": '" + name + "' is not a readable dataset");
  return Hdf5Id(id, H5Dclose);
}

std::vector<int64_t> Hdf5Reader::dataset_shape(const std::string& name) const {
  Hdf5Id ds = open_dataset(name);
  Hdf5Id space(H5Dget_space(ds.get()), H5Sclose);
  if (space.get() < 0) throw Error(path_ + ": cannot read the shape of '" + name + "'");
  return space_shape(space.get());
}

Tensor Hdf5Reader::read_float32(const std::string& name) const {
  Hdf5Id ds = open_dataset(name);
  Hdf5Id type(H5Dget_type(ds.get()), H5Tclose);
  if (type.get() < 0 || H5Tget_class(type.get()) != H5T_FLOAT || H5Tget_size(type.get()) != 4)
    throw Error(path_ + ": parameter '" + name + "' is not float32");
  Tensor t;
  t.shape = dataset_shape(name);
  t.data.resize(static_cast<size_t>(t.numel()));
  if (H5Dread(ds.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, t.data.data()) < 0)
    throw Error(path_ + ": cannot read parameter '" + name + "' (truncated file?)");
  return t;
}

template <typename T>
std::vector<T> Hdf5Reader::read_as(const std::string& name, hid_t mem_type) const {
  Hdf5Id ds = open_dataset(name);
  Hdf5Id space(H5Dget_space(ds.get()), H5Sclose);
  const hssize_t count = H5Sget_simple_extent_npoints(space.get());
  if (count < 0) throw Error(path_ + ": cannot read the size of dataset '" + name + "'");
  std::vector<T> v(static_cast<size_t>(count));
  if (count && H5Dread(ds.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()) < 0)
    throw Error(path_ + ": cannot read dataset '" + name + "'");
  return v;
}

std::vector<int32_t> Hdf5Reader::read_int32(const std::string& name) const {
  return read_as<int32_t>(name, H5T_NATIVE_INT32);
}
std::vector<int64_t> Hdf5Reader::read_int64(const std::string& name) const {
  return read_as<int64_t>(name, H5T_NATIVE_INT64);
}
std::vector<float> Hdf5Reader::read_floats(const std::string& name) const {
  return read_as<float>(name, H5T_NATIVE_FLOAT);
}
std::vector<double> Hdf5Reader::read_doubles(const std::string& name) const {
  return read_as<double>(name, H5T_NATIVE_DOUBLE);
}
std::vector<uint8_t> Hdf5Reader::read_uint8(const std::string& name) const {
  return read_as<uint8_t>(name, H5T_NATIVE_UINT8);
}

namespace {

// The file a finished HDF5 file is renamed over: `path` with its symbolic links followed
// (a link is written through, never replaced). Throws for anything but a regular file or
// nothing, and for a link to nothing.
std::string replaceable_target(const std::string& path) {
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);  // links followed
  if (std::filesystem::exists(status) && !std::filesystem::is_regular_file(status))
    throw Error(path + ": not a regular file; refusing to replace it");
  if (!std::filesystem::is_symlink(path, ec)) return path;
  const std::filesystem::path target = std::filesystem::canonical(path, ec);
  if (ec) throw Error(path + ": a symbolic link to a missing file (" + ec.message() + ")");
  return target.string();
}

}  // namespace

Hdf5Writer::Hdf5Writer(const std::string& path)
    : path_(replaceable_target(path)), temp_path_(path_ + ".tmp-" + std::to_string(getpid())) {
  silence_hdf5();
  hid_t id = H5Fcreate(temp_path_.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (id < 0) throw Error(path + ": cannot create file for writing");
  file_ = Hdf5Id(id, H5Fclose);
}

Hdf5Writer::~Hdf5Writer() {
  if (!committed_) {
    file_ = Hdf5Id();
    std::remove(temp_path_.c_str());
  }
}

void Hdf5Writer::write(const std::string& name, const std::vector<int64_t>& shape,
                       hid_t type, const void* data) {
  std::vector<hsize_t> dims(shape.begin(), shape.end());
  Hdf5Id space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr),
               H5Sclose);
  Hdf5Id ds(H5Dcreate2(file_.get(), name.c_str(), type, space.get(), H5P_DEFAULT,
                       H5P_DEFAULT, H5P_DEFAULT),
            H5Dclose);
  if (space.get() < 0 || ds.get() < 0 ||
      H5Dwrite(ds.get(), type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
    throw Error(path_ + ": cannot write dataset '" + name + "' (disk full?)");
}

void Hdf5Writer::write_float32(const std::string& name, const std::vector<int64_t>& shape,
                               const float* data) {
  write(name, shape, H5T_NATIVE_FLOAT, data);
}
void Hdf5Writer::write_int32(const std::string& name, const std::vector<int64_t>& shape,
                             const int32_t* data) {
  write(name, shape, H5T_NATIVE_INT32, data);
}
void Hdf5Writer::write_uint8(const std::string& name, const std::vector<int64_t>& shape,
                             const uint8_t* data) {
  write(name, shape, H5T_NATIVE_UINT8, data);
}

void Hdf5Writer::commit() {
  if (H5Fflush(file_.get(), H5F_SCOPE_GLOBAL) < 0)
    throw Error(path_ + ": cannot flush file (disk full?)");
  file_ = Hdf5Id();
  if (std::rename(temp_path_.c_str(), path_.c_str()) != 0)
    throw Error(path_ + ": cannot move the finished file into place");
  committed_ = true;
}

}  // namespace musiq
