// PNG, BMP, TGA, GIF (first frame), PSD, PNM through stb_image (Debian's libstb).
// 16-bit PNGs are reduced to their high byte, as TensorFlow's decode_png does.
#include <stb/stb_image.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <string_view>

#include "engine/error.h"
#include "engine/image.h"

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

// Calls visit(offset, length, type) for each chunk of a PNG up to and including IEND.
// stb 2.27 grows its buffer for the compressed data by the length each IDAT chunk
// declares, before reading it (60 bytes declaring a 1 GiB chunk made it ask for 2 GiB):
// every chunk must fit in the file. Returns the problem, or null.
template <typename Visit>
const char* walk_png_chunks(const std::vector<uint8_t>& b, Visit visit) {
  for (size_t pos = 8; pos + 8 <= b.size();) {
    const uint64_t length = uint64_t{b[pos]} << 24 | b[pos + 1] << 16 | b[pos + 2] << 8 |
                            b[pos + 3];
    if (length + 12 > b.size() - pos) return "truncated PNG (a chunk ends past the file)";
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

}  // namespace

Image decode_with_stb(const std::vector<uint8_t>& file, const std::string& name,
                      const DecodeOptions& options) {
  if (file.size() > size_t{1} << 31) throw Error(name + ": file too large to decode");
  if (unsupported_stb_format(file))
    throw Error(name + ": not a supported image (Radiance HDR and Softimage PIC are not)");
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
  int width = 0, height = 0, channels = 0;
  if (!stbi_info_from_memory(data, size, &width, &height, &channels))
    throw Error(name + ": not a supported image (" + stbi_failure_reason() + ")");
  // stb 2.27 accepts a PNM or an HDR that is 0 pixels wide or high.
  if (width <= 0 || height <= 0)
    throw Error(name + ": image has no pixels (" + std::to_string(width) + "x" +
                std::to_string(height) + ")");
  if (int64_t{width} * height > options.max_pixels)
    throw Error(name + ": too many pixels (" + std::to_string(width) + "x" +
                std::to_string(height) + ")");
  // Asking for 3 channels makes stb replicate grey and drop alpha.
  std::unique_ptr<stbi_uc, void (*)(void*)> pixels(
      stbi_load_from_memory(data, size, &width, &height, &channels, 3), stbi_image_free);
  if (!pixels) throw Error(name + ": cannot decode image (" + stbi_failure_reason() + ")");
  Image image;
  image.width = width;
  image.height = height;
  image.rgb.assign(pixels.get(), pixels.get() + size_t(width) * height * 3);
  return image;
}

}  // namespace musiq
