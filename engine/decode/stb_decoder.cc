// PNG, BMP, TGA, GIF (first frame), PSD, PNM through stb_image (Debian's libstb).
// 16-bit PNGs are reduced to their high byte, as TensorFlow's decode_png does.
#include <stb/stb_image.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string_view>

#include "base/error.h"
#include "engine/decode/image.h"

namespace musiq {
namespace {

bool starts_with(const std::vector<uint8_t>& bytes, size_t at, std::string_view magic) {
  return bytes.size() >= at + magic.size() &&
         std::equal(magic.begin(), magic.end(), bytes.begin() + at,
                    [](char m, uint8_t b) { return static_cast<uint8_t>(m) == b; });
}

// stb_image 2.27 reads the pixels of a PNM with one read whose failure it ignores (a
// truncated file decodes to uninitialised memory), accumulates header numbers in an int
// without an overflow check, and mishandles 16-bit samples. Parses the header as stb
// does (P5 or P6, whitespace and '#' comments, width, height, maxval, one separator
// byte); returns the problem, or null.
const char* pnm_problem(const std::vector<uint8_t>& b) {
  size_t pos = 2;
  auto next = [&]() -> int { return pos < b.size() ? b[pos++] : -1; };
  int c = next();
  auto skip_space = [&] {
    for (;;) {
      while (c == ' ' || (c >= '\t' && c <= '\r')) c = next();
      if (c != '#') return;
      while (c >= 0 && c != '\n' && c != '\r') c = next();
    }
  };
  auto number = [&](int64_t& value) {
    value = 0;
    for (int digits = 0; c >= '0' && c <= '9'; c = next()) {
      if (++digits > 8) return false;
      value = value * 10 + (c - '0');
    }
    return true;
  };
  int64_t width = 0, height = 0, maxval = 0;
  skip_space();
  if (!number(width)) return "PNM width too large";
  skip_space();
  if (!number(height)) return "PNM height too large";
  skip_space();
  if (!number(maxval)) return "PNM maximum value too large";
  // 16-bit samples: stb 2.27 reads them in the wrong byte order, and its conversion of
  // 16-bit grey to RGB reads past its buffer.
  if (maxval > 255) return "16-bit PNM is not supported";
  const int64_t channels = b[1] == '6' ? 3 : 1;
  if (static_cast<int64_t>(b.size() - pos) < width * height * channels)
    return "truncated PNM (pixel data ends early)";
  return nullptr;
}

// The same unchecked read in stb 2.27 for the rows of an uncompressed, not colour-mapped
// TGA. TGA has no magic number, but its second byte is 0 or 1, unlike every other
// format's here.
const char* tga_problem(const std::vector<uint8_t>& b) {
  if (b.size() < 18 || b[1] != 0 || (b[2] != 2 && b[2] != 3)) return nullptr;
  const int bits = b[16];
  const int channels = bits == 8 ? 1 : bits == 16 && b[2] == 3 ? 2 : bits == 24 ? 3
                       : bits == 32 ? 4 : 0;
  if (channels == 0) return nullptr;  // 15/16-bit colour: read pixel by pixel
  const int64_t width = b[12] | b[13] << 8, height = b[14] | b[15] << 8;
  if (static_cast<int64_t>(b.size()) - 18 - b[0] < width * height * channels)
    return "truncated TGA (pixel data ends early)";
  return nullptr;
}

uint32_t big_endian32(const std::vector<uint8_t>& b, size_t at) {
  return uint32_t{b[at]} << 24 | uint32_t{b[at + 1]} << 16 | uint32_t{b[at + 2]} << 8 | b[at + 3];
}

// CRC-32 as PNG defines it (ISO 3309, reflected polynomial 0xEDB88320).
[[maybe_unused]] uint32_t crc32(const uint8_t* data, size_t size) {  // unused when fuzzing
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t n = 0; n < 256; ++n) {
      uint32_t c = n;
      for (int k = 0; k < 8; ++k) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[n] = c;
    }
    return t;
  }();
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < size; ++i) c = table[(c ^ data[i]) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

// Calls visit(offset, length, type) for each chunk of a PNG up to and including IEND.
// stb 2.27 grows its buffer for the compressed data by the length each IDAT chunk
// declares, before reading it (60 bytes declaring a 1 GiB chunk made it ask for 2 GiB):
// every chunk must fit in the file. It does not check CRCs either, which libpng (so
// TensorFlow) refuses on a damaged chunk. Returns the problem, or null.
template <typename Visit>
const char* walk_png_chunks(const std::vector<uint8_t>& b, Visit visit) {
  for (size_t pos = 8; pos + 8 <= b.size();) {
    const uint64_t length = big_endian32(b, pos);
    if (length + 12 > b.size() - pos) return "truncated PNG (a chunk ends past the file)";
#ifndef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION  // fuzz/CMakeLists.txt
    if (crc32(&b[pos + 4], static_cast<size_t>(length) + 4) !=
        big_endian32(b, pos + 8 + static_cast<size_t>(length)))
      return "damaged PNG (a chunk's CRC does not match its data)";
#endif
    const std::string_view type(reinterpret_cast<const char*>(&b[pos + 4]), 4);
    visit(pos, static_cast<size_t>(length), type);
    if (type == "IEND") return nullptr;
    pos += static_cast<size_t>(length) + 12;
  }
  return "truncated PNG (no IEND chunk)";
}

// stb 2.27 hands a null pointer to memcpy for an empty IDAT chunk seen before any data
// (undefined behaviour, found by UBSan). An empty chunk adds nothing to the compressed
// stream, so such files are passed on without them; others are not copied.
const char* png_problem(const std::vector<uint8_t>& b, std::vector<uint8_t>& cleaned) {
  bool empty_idat = false;
  const char* problem = walk_png_chunks(b, [&](size_t, size_t length, std::string_view type) {
    empty_idat |= type == "IDAT" && length == 0;
  });
  if (problem || !empty_idat) return problem;
  cleaned.assign(b.begin(), b.begin() + 8);
  walk_png_chunks(b, [&](size_t pos, size_t length, std::string_view type) {
    if (type != "IDAT" || length != 0)
      cleaned.insert(cleaned.end(), b.begin() + pos, b.begin() + pos + length + 12);
  });
  return nullptr;
}

// Formats stb_image reads that we do not offer: Radiance HDR (tone-mapped to 8 bits,
// which TensorFlow never does; a truncated flat HDR reads uninitialised bytes in stb
// 2.27) and Softimage PIC.
bool unsupported_stb_format(const std::vector<uint8_t>& b) {
  return starts_with(b, 0, "#?RADIANCE\n") || starts_with(b, 0, "#?RGBE\n") ||
         (starts_with(b, 0, "\x53\x80\xF6\x34") && starts_with(b, 88, "PICT"));
}

// The file's format by its magic bytes, for messages (TGA has none).
const char* format_name(const std::vector<uint8_t>& b) {
  if (starts_with(b, 0, "\x89PNG")) return "PNG";
  if (starts_with(b, 0, "BM")) return "BMP";
  if (starts_with(b, 0, "GIF8")) return "GIF";
  if (starts_with(b, 0, "8BPS")) return "PSD";
  if (starts_with(b, 0, "P5") || starts_with(b, 0, "P6")) return "PNM";
  return "TGA";
}

// stb_image reads from memory without noticing when the data runs out: past the end it
// reads zeros, so a truncated BMP, GIF, PSD or run-length TGA decodes to an image
// completed with black (or the GIF's background). Reading through callbacks tells us.
struct MemoryReader {
  const std::vector<uint8_t>& bytes;
  size_t pos = 0;
  bool ran_out = false;  // stb asked for data past the end

  static int read(void* user, char* out, int size) {
    auto* r = static_cast<MemoryReader*>(user);
    if (r->pos >= r->bytes.size()) {
      r->ran_out = true;
      return 0;
    }
    const size_t n = std::min(static_cast<size_t>(size), r->bytes.size() - r->pos);
    std::memcpy(out, r->bytes.data() + r->pos, n);
    r->pos += n;
    return static_cast<int>(n);
  }
  static void skip(void* user, int n) {
    auto* r = static_cast<MemoryReader*>(user);
    r->pos += static_cast<size_t>(std::max(n, 0));
    if (r->pos > r->bytes.size()) {
      r->ran_out = true;
      r->pos = r->bytes.size();
    }
  }
  static int eof(void* user) {
    auto* r = static_cast<MemoryReader*>(user);
    return r->pos >= r->bytes.size();
  }
};

}  // namespace

Image decode_with_stb(const std::vector<uint8_t>& file, const std::string& name,
                      const DecodeOptions& options) {
  if (file.size() > size_t{1} << 31) throw Error(name + ": file too large to decode");
  if (unsupported_stb_format(file))
    throw Error(name + ": not a supported image (Radiance HDR and Softimage PIC are not)");
  // With an alpha channel, stb_image takes a PSD's colours off a white matte in floats that
  // can fall outside a byte before the cast (undefined behaviour, found by fuzzing); no
  // official MUSIQ pipeline reads PSD at all.
  if (starts_with(file, 0, "8BPS") && file.size() >= 14 && (file[12] << 8 | file[13]) > 3)
    throw Error(name + ": a PSD with more than 3 channels (alpha) is not supported");
  const bool pnm = starts_with(file, 0, "P5") || starts_with(file, 0, "P6");
  const bool png = starts_with(file, 0, "\x89PNG\r\n\x1a\n");
  std::vector<uint8_t> cleaned_png;
  const char* problem = pnm ? pnm_problem(file)
                        : png ? png_problem(file, cleaned_png)
                              : tga_problem(file);
  if (problem) throw Error(name + ": " + problem);
  const std::vector<uint8_t>& bytes = cleaned_png.empty() ? file : cleaned_png;
  const auto* data = bytes.data();
  const int size = static_cast<int>(bytes.size());
  // stb's own size checks (e.g. 1 GiB of decoded PNG) fail its header reading with a
  // vague reason: the PNG header is read here first, so a huge image says so.
  if (png && bytes.size() >= 24 && starts_with(bytes, 12, "IHDR"))
    check_declared_size(name, big_endian32(bytes, 16), big_endian32(bytes, 20), options);
  int width = 0, height = 0, channels = 0;
  if (!stbi_info_from_memory(data, size, &width, &height, &channels))
    throw Error(name + ": not a supported image (" + stbi_failure_reason() + ")");
  // A negative BMP height means rows stored top-down: stb's loader takes that, but its
  // header reader reports the height as it is stored.
  int64_t declared_height = height;
  if (starts_with(bytes, 0, "BM") && declared_height < 0) declared_height = -declared_height;
  // stb 2.27 accepts a PNM or an HDR that is 0 pixels wide or high.
  check_declared_size(name, width, declared_height, options);
  // Asking for 3 channels makes stb replicate grey and drop alpha.
  MemoryReader reader{bytes};
  const stbi_io_callbacks callbacks = {MemoryReader::read, MemoryReader::skip, MemoryReader::eof};
  std::unique_ptr<stbi_uc, void (*)(void*)> pixels(
      stbi_load_from_callbacks(&callbacks, &reader, &width, &height, &channels, 3),
      stbi_image_free);
  if (!pixels) throw Error(name + ": cannot decode image (" + stbi_failure_reason() + ")");
  if (reader.ran_out)
    throw Error(name + ": truncated " + format_name(bytes) +
                " (data ends before the image is complete)");
  Image image;
  image.width = width;
  image.height = height;
  image.rgb.assign(pixels.get(), pixels.get() + size_t(width) * height * 3);
  return image;
}

}  // namespace musiq
