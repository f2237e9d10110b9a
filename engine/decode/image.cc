#include "engine/decode/image.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>

#include "base/error.h"

namespace musiq {

void check_declared_size(const std::string& name, int64_t width, int64_t height,
                         const DecodeOptions& options) {
  const std::string size = std::to_string(width) + "x" + std::to_string(height);
  if (width <= 0 || height <= 0) throw Error(name + ": image has no pixels (" + size + ")");
  // Divided, not multiplied: a header may declare two sides of 2^32 - 1 (found by fuzzing).
  if (width > options.max_pixels / height)
    throw Error(name + ": too many pixels (" + size + ", more than " +
                std::to_string(options.max_pixels) + ")");
  if (options.check_size) options.check_size(static_cast<int>(width), static_cast<int>(height));
}

Image decode_image(const std::vector<uint8_t>& bytes, const std::string& name,
                   const DecodeOptions& options) {
  if (bytes.empty()) throw Error(name + ": empty file");
  // Whatever starts like a JPEG goes to libjpeg, including what stb_image would decode
  // as one (0xFF fill bytes before SOI, no marker right after it): stb's own JPEG decoder
  // (2.27) writes past its Huffman tables on a bad DHT segment. No format stb reads for
  // us starts with 0xFF 0xD8 or 0xFF 0xFF (a TGA's second byte is 0 or 1).
  const bool is_jpeg =
      bytes.size() >= 2 && bytes[0] == 0xFF && (bytes[1] == 0xD8 || bytes[1] == 0xFF);
  return is_jpeg ? decode_jpeg(bytes, name, options) : decode_with_stb(bytes, name, options);
}

namespace {

// Larger files are refused before a byte is read (stb_image's limit; a real photo is far
// smaller), so one bad file cannot make a worker hold gigabytes.
constexpr int64_t kMaxFileBytes = int64_t{1} << 31;
// Bytes read first to check the header's declared size before reading the rest.
constexpr size_t kHeaderBytes = size_t{1} << 16;

// Thrown by the header probe once the declared size has been checked.
struct HeaderChecked {};

// Decodes `head` (the file's first bytes) only as far as the size its header declares, and
// throws musiq::Error if that size is refused. Says nothing when the header does not fit
// in `head`: the whole file's decode then gives the verdict.
void check_header_first(const std::vector<uint8_t>& head, const std::string& name,
                        const DecodeOptions& options) {
  // A PNG's size is in its first chunk (its decoder checks every chunk's CRC first).
  const uint8_t* h = head.data();
  if (head.size() >= 24 && std::memcmp(h, "\x89PNG\r\n\x1a\n", 8) == 0 &&
      std::memcmp(h + 12, "IHDR", 4) == 0) {
    auto big_endian32 = [&](size_t at) {
      return int64_t{h[at]} << 24 | int64_t{h[at + 1]} << 16 | int64_t{h[at + 2]} << 8 | h[at + 3];
    };
    return check_declared_size(name, big_endian32(16), big_endian32(20), options);
  }
  std::string refused;
  DecodeOptions probe;
  probe.max_pixels = INT64_MAX;  // checked in check_size, with the caller's own check
  probe.check_size = [&](int width, int height) {
    try {
      check_declared_size(name, width, height, options);
    } catch (const Error& e) {
      refused = e.what();
    }
    throw HeaderChecked{};
  };
  try {
    decode_image(head, name, probe);
  } catch (const HeaderChecked&) {
  } catch (const Error&) {
    // The header runs past `head`, or is broken: the full decode says which.
  }
  if (!refused.empty()) throw Error(refused);
}

// Closes a file descriptor when it goes out of scope.
struct FdCloser {
  int fd;
  ~FdCloser() { ::close(fd); }
};

}  // namespace

std::string printable_path(const std::string& path) {
  std::string shown;
  for (char c : path) shown += c == '\0' ? std::string("\\0") : std::string(1, c);
  return shown;
}

Image load_image_file(const std::string& path, const DecodeOptions& options) {
  if (path.find('\0') != std::string::npos)
    throw Error(printable_path(path) + ": a path cannot contain a NUL byte");
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);  // a FIFO: no wait
  if (fd < 0) {
    if (errno == ENOENT || errno == ENOTDIR) throw Error(path + ": cannot open file for reading");
    throw Error(path + ": cannot open file for reading (" + std::strerror(errno) + ")");
  }
  const FdCloser closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw Error(path + ": cannot stat (" + std::strerror(errno) + ")");
  if (!S_ISREG(st.st_mode)) throw Error(path + ": not a regular file");
  if (st.st_size > kMaxFileBytes)
    throw Error(path + ": file too large to decode (" + std::to_string(st.st_size) +
                " bytes, more than " + std::to_string(kMaxFileBytes) + ")");
  std::vector<uint8_t> bytes;
  auto read_up_to = [&](size_t size) {
    for (size_t done = bytes.size(); done < size;) {
      bytes.resize(size);
      const ssize_t n = ::read(fd, bytes.data() + done, size - done);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw Error(path + ": read error (" + std::strerror(errno) + ")");
      if (n == 0) {
        bytes.resize(done);  // the file shrank while being read
        return;
      }
      done += static_cast<size_t>(n);
    }
  };
  const size_t size = static_cast<size_t>(st.st_size);
  if (size > kHeaderBytes) {
    read_up_to(kHeaderBytes);
    check_header_first(bytes, path, options);
  }
  bytes.reserve(size);
  read_up_to(size);
  return decode_image(bytes, path, options);
}

}  // namespace musiq
