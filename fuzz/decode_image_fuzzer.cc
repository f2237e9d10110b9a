// libFuzzer target: musiq::decode_image on arbitrary bytes (docs/hardening.md).
// A musiq::Error is the expected answer to a bad file. Anything else is a finding: a
// crash, another exception (it escapes and aborts), a sanitizer report, a leak, or a
// decoded image that breaks decode_image's contract (checked below).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "base/error.h"
#include "engine/decode/image.h"

namespace {

// Small enough that one input decodes in milliseconds, large enough for real photos.
constexpr int64_t kMaxPixels = int64_t{4} * 1024 * 1024;

[[noreturn]] void contract_broken(const char* what, const musiq::Image& image) {
  std::fprintf(stderr, "decode_image_fuzzer: %s (width %d, height %d, %zu bytes)\n", what,
               image.width, image.height, image.rgb.size());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  musiq::DecodeOptions options;
  options.max_pixels = kMaxPixels;
  const std::vector<uint8_t> bytes(data, data + size);
  try {
    const musiq::Image image = musiq::decode_image(bytes, "fuzz-input", options);
    if (image.width <= 0 || image.height <= 0) contract_broken("empty image decoded", image);
    const int64_t pixels = int64_t{image.width} * image.height;
    if (pixels > kMaxPixels) contract_broken("max_pixels not enforced", image);
    if (image.rgb.size() != static_cast<size_t>(pixels) * 3)
      contract_broken("rgb size is not width x height x 3", image);
  } catch (const musiq::Error&) {
    // The expected failure for a malformed image.
  }
  return 0;
}
