// Decoded 8-bit RGB images: JPEG exactly as TensorFlow decodes it, other formats
// through stb_image. Grayscale is replicated to RGB, alpha dropped (our policy; the
// official code only handles 3-channel input).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace musiq {

struct Image {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> rgb;  // height x width x 3, row-major
};

struct DecodeOptions {
  // Refuse images with more pixels than this, checked from the header before decoding.
  int64_t max_pixels = int64_t{128} * 1024 * 1024;
};

// `name` is used in error messages (usually the path).
Image decode_image(const std::vector<uint8_t>& bytes, const std::string& name,
                   const DecodeOptions& options = {});
Image load_image_file(const std::string& path, const DecodeOptions& options = {});

// Format-specific decoders, chosen by decode_image from the file's magic bytes.
Image decode_jpeg(const std::vector<uint8_t>& bytes, const std::string& name,
                  const DecodeOptions& options);
Image decode_with_stb(const std::vector<uint8_t>& bytes, const std::string& name,
                      const DecodeOptions& options);

}  // namespace musiq
