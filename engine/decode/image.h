// Decoded 8-bit RGB images: JPEG exactly as TensorFlow decodes it, other formats
// through stb_image. Grayscale is replicated to RGB, alpha dropped (our policy; the
// official code only handles 3-channel input).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace musiq {

struct Image {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> rgb;  // height x width x 3, row-major
  // The decoder's first warning, when it filled in corrupt data as TensorFlow's decoder
  // does (e.g. libjpeg's "Corrupt JPEG data: premature end of data segment"); else "".
  std::string warning;
};

// The size every image is resized to before scoring (`--target-size W H`); 0 x 0: none,
// each image is scored at its own size.
struct TargetSize {
  int width = 0, height = 0;
  bool set() const { return width != 0 || height != 0; }
};

struct DecodeOptions {
  // Refuse images with more pixels than this, checked from the header before decoding.
  int64_t max_pixels = int64_t{128} * 1024 * 1024;
  // Refuse images whose model input would be longer than this many tokens (CLS
  // included; the model's time grows with its square). Checked from the header before
  // decoding by prepare_image_file (engine/musiq.h), which knows the model's settings.
  // The default takes any photo of up to 50 megapixels (49,111 tokens at 8160x6120).
  int64_t max_tokens = 50000;
  // Called with the size the header declares, before any pixel is decoded; throws
  // musiq::Error to refuse the image. prepare_image_file sets it for max_tokens.
  std::function<void(int width, int height)> check_size;
  // When set, prepare_image_file and prepare_encoded_image (engine/musiq.h) resize the
  // decoded image to this size before it is scored (engine/preprocess/target_size.h), and
  // max_tokens applies to that size; max_pixels still bounds the decoded image. The
  // decoders themselves ignore it.
  TargetSize target;
};

// The checks of `options` on the size a header declares (max_pixels, check_size);
// throws musiq::Error naming the file. For the decoders below.
void check_declared_size(const std::string& name, int64_t width, int64_t height,
                         const DecodeOptions& options);

// `name` is used in error messages (usually the path).
Image decode_image(const std::vector<uint8_t>& bytes, const std::string& name,
                   const DecodeOptions& options = {});
// Refuses, before reading it whole, a file over 2 GiB or whose header declares a refused
// size; refuses a path with a NUL byte (it would name another file).
Image load_image_file(const std::string& path, const DecodeOptions& options = {});
// The path as messages show it: a NUL byte as "\0".
std::string printable_path(const std::string& path);

// Format-specific decoders, chosen by decode_image from the file's magic bytes.
Image decode_jpeg(const std::vector<uint8_t>& bytes, const std::string& name,
                  const DecodeOptions& options);
Image decode_with_stb(const std::vector<uint8_t>& bytes, const std::string& name,
                      const DecodeOptions& options);

}  // namespace musiq
