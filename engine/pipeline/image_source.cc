#include "engine/pipeline/image_source.h"

#include <climits>

#include "base/error.h"

namespace musiq {
namespace {

// The pixels as an RGB image, under the same policy as decoded files.
Image image_from_pixels(const Pixels& p, const std::string& name, int64_t max_pixels) {
  const std::string size = " (" + std::to_string(p.width) + "x" + std::to_string(p.height) + ")";
  if (p.width <= 0 || p.height <= 0) throw Error(name + ": image has no pixels" + size);
  if (!p.data) throw Error(name + ": no pixel data");
  // Each side within int first: then the product cannot overflow, and Image holds it.
  if (p.width > INT_MAX || p.height > INT_MAX || p.width * p.height > max_pixels)
    throw Error(name + ": too many pixels (" + std::to_string(p.width) + "x" +
                std::to_string(p.height) + ", more than " + std::to_string(max_pixels) + ")");
  if (p.channels != 1 && p.channels != 3 && p.channels != 4)
    throw Error(name + ": " + std::to_string(p.channels) +
                " channels per pixel, expected 1 (gray), 3 (RGB) or 4 (RGBA)");
  if (p.row_stride < p.width * p.channels)
    throw Error(name + ": row stride of " + std::to_string(p.row_stride) +
                " bytes is less than a row (" + std::to_string(p.width * p.channels) +
                " bytes)");
  Image image;
  image.width = static_cast<int>(p.width);
  image.height = static_cast<int>(p.height);
  image.rgb.resize(size_t(p.width) * size_t(p.height) * 3);
  uint8_t* out = image.rgb.data();
  for (int64_t y = 0; y < p.height; ++y) {
    const uint8_t* row = p.data + y * p.row_stride;
    for (int64_t x = 0; x < p.width; ++x, out += 3) {
      const uint8_t* px = row + x * p.channels;
      out[0] = px[0];
      out[1] = p.channels == 1 ? px[0] : px[1];
      out[2] = p.channels == 1 ? px[0] : px[2];
    }
  }
  return image;
}

}  // namespace

PreparedImagePtr prepare_source(const ImageSource& source, const ModelConfig& config,
                                const DecodeOptions& decode, DeviceKind device) {
  switch (source.kind) {
    case ImageSource::Kind::kFile:
      return prepare_image_file(source.name, config, decode, device);  // refuses NUL bytes
    case ImageSource::Kind::kEncoded:
      return prepare_encoded_image(
          std::vector<uint8_t>(source.encoded, source.encoded + source.encoded_size),
          source.name, config, decode, device);
    case ImageSource::Kind::kPixels: {
      Image image = image_from_pixels(source.pixels, source.name, decode.max_pixels);
      const TargetSize& t = decode.target;
      check_token_budget(t.set() ? t.width : image.width, t.set() ? t.height : image.height,
                         config, decode.max_tokens, source.name);
      return prepare_image(std::move(image), config, device, t);
    }
  }
  throw Error(source.name + ": unknown image kind");
}

}  // namespace musiq
