// PNG, BMP, TGA, GIF (first frame), PSD, PNM through stb_image (Debian's libstb).
// 16-bit PNGs are reduced to their high byte, as TensorFlow's decode_png does.
#include <stb/stb_image.h>

#include <cstdlib>
#include <memory>

#include "engine/error.h"
#include "engine/image.h"

namespace musiq {

Image decode_with_stb(const std::vector<uint8_t>& bytes, const std::string& name,
                      const DecodeOptions& options) {
  const auto* data = bytes.data();
  const int size = static_cast<int>(bytes.size());
  if (bytes.size() > size_t{1} << 31) throw Error(name + ": file too large to decode");
  int width = 0, height = 0, channels = 0;
  if (!stbi_info_from_memory(data, size, &width, &height, &channels))
    throw Error(name + ": not a supported image (" + stbi_failure_reason() + ")");
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
