#include "engine/decode/image.h"

#include <filesystem>
#include <fstream>
#include <iterator>

#include "base/error.h"

namespace musiq {

void check_declared_size(const std::string& name, int64_t width, int64_t height,
                         const DecodeOptions& options) {
  const std::string size = std::to_string(width) + "x" + std::to_string(height);
  if (width <= 0 || height <= 0) throw Error(name + ": image has no pixels (" + size + ")");
  if (width * height > options.max_pixels)
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

Image load_image_file(const std::string& path, const DecodeOptions& options) {
  std::error_code ec;
  if (std::filesystem::exists(path, ec) && !std::filesystem::is_regular_file(path, ec))
    throw Error(path + ": not a regular file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open file for reading");
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                             std::istreambuf_iterator<char>());
  if (in.bad()) throw Error(path + ": read error");
  return decode_image(bytes, path, options);
}

}  // namespace musiq
