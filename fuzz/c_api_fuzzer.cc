// libFuzzer target: the C API's in-memory entry points, musiq_score_encoded and
// musiq_score_rgb8, with fuzzed bytes, sizes, strides and channel counts, on a small
// random model (MUSIQ_FUZZ_WEIGHTS; fuzz/make-seeds makes it). Input: one byte picks the
// call (even: encoded, odd: pixels); for pixels, then width and height (int16), the row
// stride (int32) and channels (int8), each as given (negative, zero, huge), then the
// pixels. A buffer as large as the C API may read is handed over only for arguments it
// documents as valid; for any other it gets 16 bytes and must refuse them without
// reading further (ASan watches). A finding: a crash, a sanitizer report, a leak, or a
// result that breaks the API's contract (checked below).
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "musiq/musiq.h"

namespace {

constexpr size_t kMaxBufferBytes = size_t{16} << 20;
constexpr int64_t kMaxPixels = 4096;  // with the model's 32- and 64-pixel scales: milliseconds

musiq_scorer* g_scorer = nullptr;

[[noreturn]] void contract_broken(const char* what, const musiq_result& r) {
  std::fprintf(stderr, "c_api_fuzzer: %s (status %d, score %g, %dx%d, error %s)\n", what,
               r.status, r.score, r.width, r.height, r.error ? r.error : "(null)");
  std::abort();
}

template <typename T>
T take(const uint8_t*& data, size_t& size) {
  T value{};
  const size_t n = size < sizeof(T) ? size : sizeof(T);
  std::memcpy(&value, data, n);
  data += n;
  size -= n;
  return value;
}

void check(int status, const musiq_result& r, int width, int height) {
  if (status != r.status) contract_broken("return code differs from result status", r);
  if (status == MUSIQ_OK) {
    if (!std::isfinite(r.score)) contract_broken("MUSIQ_OK with a non-finite score", r);
    if (r.error) contract_broken("MUSIQ_OK with an error message", r);
    if (width && (r.width != width || r.height != height))
      contract_broken("result size differs from the pixels'", r);
    if (int64_t{r.width} * r.height > kMaxPixels) contract_broken("max_pixels not enforced", r);
  } else {
    if (!std::isnan(r.score)) contract_broken("failure without a NaN score", r);
    if (!r.error || !*r.error) contract_broken("failure without a message", r);
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const char* weights = std::getenv("MUSIQ_FUZZ_WEIGHTS");
  if (!weights) {
    std::fprintf(stderr, "c_api_fuzzer: set MUSIQ_FUZZ_WEIGHTS to a small model (.h5)\n");
    std::exit(2);
  }
  musiq_params params = musiq_default_params();
  params.weights = weights;
  params.device = "cpu";
  params.max_pixels = kMaxPixels;
  if (musiq_open(&params, &g_scorer) != MUSIQ_OK) {
    std::fprintf(stderr, "c_api_fuzzer: %s\n", musiq_error_message());
    std::exit(2);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  musiq_result r{};
  if ((take<uint8_t>(data, size) & 1) == 0) {
    const std::vector<uint8_t> bytes(data, data + size);  // exactly `size` bytes for ASan
    check(musiq_score_encoded(g_scorer, bytes.data(), bytes.size(), &r), r, 0, 0);
    return 0;
  }
  const int width = take<int16_t>(data, size);
  const int height = take<int16_t>(data, size);
  const int stride = take<int32_t>(data, size);
  const int channels = take<int8_t>(data, size);
  const bool valid = width > 0 && height > 0 && (channels == 1 || channels == 3 || channels == 4) &&
                     int64_t{stride} >= int64_t{width} * channels &&
                     int64_t{width} * height <= kMaxPixels;
  const size_t needed =
      valid ? size_t(int64_t{height - 1} * stride + int64_t{width} * channels) : 16;
  // A valid call with a stride of up to 2 GB: the buffer it documents could be 128 GB,
  // more than this harness can hand over (its own allocation, not the API's, was the
  // out-of-memory finding).
  if (needed > kMaxBufferBytes) return 0;
  std::vector<uint8_t> pixels(needed);
  for (size_t i = 0; i < needed && size; ++i) pixels[i] = data[i % size];
  const int status = musiq_score_rgb8(g_scorer, pixels.data(), width, height, stride, channels, &r);
  check(status, r, width, height);
  if (valid && status != MUSIQ_OK) contract_broken("valid pixels refused", r);
  return 0;
}
