// Decoding: formats, our grey/alpha policy, and clear errors for bad files.
#include <sys/resource.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "base/error.h"
#include "engine/decode/image.h"
#include "tests/test_util.h"

namespace musiq {
namespace {

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Expects decode_image to throw an Error whose message names the file and `problem`.
void expect_error(const std::vector<uint8_t>& bytes, const std::string& problem) {
  try {
    decode_image(bytes, "bad.jpg");
    ADD_FAILURE() << "no error for: " << problem;
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.rfind("bad.jpg: ", 0), 0u) << msg;
    EXPECT_NE(msg.find(problem), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "one line: " << msg;
  }
}

TEST(ImageDecode, EmptyFile) { expect_error({}, "empty file"); }

TEST(ImageDecode, TextNamedJpg) {
  const std::string text = "this is not an image\n";
  expect_error({text.begin(), text.end()}, "not a supported image");
}

TEST(ImageDecode, TruncatedJpeg) {
  auto bytes = read_bytes(test::source_path("samples/rocket.jpg"));
  bytes.resize(bytes.size() / 2);
  expect_error(bytes, "truncated JPEG");
}

TEST(ImageDecode, JpegHeaderOnlyIsInvalid) {
  auto bytes = read_bytes(test::source_path("samples/rocket.jpg"));
  bytes.resize(200);
  expect_error(bytes, "JPEG");
}

// Inputs found by fuzz/decode_image_fuzzer that stb_image 2.27 mishandles.
std::vector<uint8_t> bytes_of(const std::string& s) { return {s.begin(), s.end()}; }

TEST(ImageDecode, ZeroPixelPnmIsAnError) {  // stb "decodes" it to a 0x0 image
  expect_error(bytes_of("P5\n0 0\n255\n"), "no pixels");
  expect_error(bytes_of("P5\n"), "no pixels");
}

TEST(ImageDecode, TruncatedPnmIsAnError) {  // stb returns uninitialised memory
  expect_error(bytes_of("P6\n4 4\n255\n" + std::string(47, '\x7f')), "truncated PNM");
  expect_error(bytes_of("P5\n999999999 1\n255\n"), "PNM width too large");
}

TEST(ImageDecode, TruncatedTgaIsAnError) {  // the same for an uncompressed TGA
  std::string tga(18, '\0');
  tga[2] = 2, tga[12] = 4, tga[14] = 4, tga[16] = 24;  // 4x4 true colour, 48 bytes
  expect_error(bytes_of(tga + std::string(47, '\x7f')), "truncated TGA");
  const Image image = decode_image(bytes_of(tga + std::string(48, '\x7f')), "ok.tga");
  EXPECT_EQ(image.width, 4);
}

TEST(ImageDecode, SixteenBitPnmIsRefused) {  // stb: wrong byte order, grey over-read
  expect_error(bytes_of("P5\n3 2\n65535\n" + std::string(12, '\x40')), "16-bit PNM");
}

TEST(ImageDecode, JpegLookalikesGoToLibjpeg) {  // stb's own JPEG decoder is unsafe
  std::vector<uint8_t> dht = {0xFF, 0xFF, 0xD8, 0xFF, 0xC4, 0x01, 0x13, 0x00};
  dht.insert(dht.end(), 16, 0xFF);  // 4080 Huffman codes: stb writes past size[257]
  expect_error(dht, "invalid JPEG");
}

TEST(ImageDecode, RadianceHdrIsRefused) {
  expect_error(bytes_of("#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 1 +X 1\n\x80\x80\x80\x80"),
               "not a supported image");
}

TEST(ImageDecode, TooManyPixelsIsRefusedBeforeDecoding) {
  DecodeOptions small;
  small.max_pixels = 1000;
  EXPECT_THROW(load_image_file(test::source_path("samples/rocket.jpg"), small), Error);
  EXPECT_THROW(load_image_file(test::source_path("samples/chelsea.png"), small), Error);
}

TEST(ImageDecode, MissingFileNamesThePath) {
  try {
    load_image_file("/nonexistent/photo.jpg");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "/nonexistent/photo.jpg: cannot open file for reading");
  }
}

TEST(ImageDecode, GrayscaleJpegIsReplicatedToRgb) {
  const Image image = load_image_file(test::source_path("tests/data/camera_gray_459x371_q90.jpg"));
  ASSERT_EQ(image.width, 459);
  ASSERT_EQ(image.height, 371);
  for (size_t i = 0; i < image.rgb.size(); i += 3) {
    ASSERT_EQ(image.rgb[i], image.rgb[i + 1]);
    ASSERT_EQ(image.rgb[i], image.rgb[i + 2]);
  }
}

// PNGs written here byte by byte (zlib stored blocks).
std::vector<uint8_t> tiny_png(int color_type, const std::vector<uint8_t>& raw_rows, int w, int h,
                              int bit_depth = 8);

TEST(ImageDecode, AlphaIsDroppedAndGreyAlphaReplicated) {
  const Image rgba = decode_image(tiny_png(6, {0, 10, 20, 30, 40}, 1, 1), "rgba.png");
  EXPECT_EQ(rgba.rgb, (std::vector<uint8_t>{10, 20, 30}));
  const Image ga = decode_image(tiny_png(4, {0, 7, 255, 9, 0}, 2, 1), "ga.png");
  EXPECT_EQ(ga.rgb, (std::vector<uint8_t>{7, 7, 7, 9, 9, 9}));
}

// TensorFlow 2.21's decode_jpeg/decode_png on this file gives [18, 0, 255] (checked by
// hand): 16-bit samples keep their high byte, no rounding (0x12FF -> 0x12).
TEST(ImageDecode, SixteenBitPngKeepsTheHighByteAsTensorFlow) {
  const Image image = decode_image(tiny_png(2, {0, 0x12, 0xFF, 0x00, 0x80, 0xFF, 0xFF}, 1, 1, 16),
                                   "deep.png");
  EXPECT_EQ(image.rgb, (std::vector<uint8_t>{18, 0, 255}));
}

// stb 2.27 would reserve 2 GiB for the compressed data of this 60-byte file before
// finding it missing (a fuzz finding): chunks must fit in the file.
TEST(ImageDecode, PngChunkLongerThanTheFileIsRefusedBeforeDecoding) {
  std::vector<uint8_t> png = tiny_png(2, {0, 1, 2, 3}, 1, 1);
  const size_t idat = 8 + 25;  // signature, IHDR chunk
  png[idat] = 0x40;            // IDAT now declares 1 GiB more than it holds
  try {
    decode_image(png, "big-chunk.png");
    ADD_FAILURE() << "decoded";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "big-chunk.png: truncated PNG (a chunk ends past the file)");
  }
}

TEST(ImageDecode, PngWithoutIendIsTruncated) {
  std::vector<uint8_t> png = tiny_png(2, {0, 1, 2, 3}, 1, 1);
  png.resize(png.size() - 12);  // drop IEND
  try {
    decode_image(png, "cut.png");
    ADD_FAILURE() << "decoded";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "cut.png: truncated PNG (no IEND chunk)");
  }
}

uint32_t crc32(const uint8_t* p, size_t n) {
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; ++i) {
    c ^= p[i];
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
  }
  return ~c;
}

void put32(std::vector<uint8_t>& v, uint32_t x) {
  for (int s = 24; s >= 0; s -= 8) v.push_back(uint8_t(x >> s));
}

void chunk(std::vector<uint8_t>& png, const char* type, const std::vector<uint8_t>& data) {
  put32(png, uint32_t(data.size()));
  std::vector<uint8_t> body(type, type + 4);
  body.insert(body.end(), data.begin(), data.end());
  png.insert(png.end(), body.begin(), body.end());
  put32(png, crc32(body.data(), body.size()));
}

std::vector<uint8_t> tiny_png(int color_type, const std::vector<uint8_t>& raw, int w, int h,
                              int bit_depth) {
  std::vector<uint8_t> png = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  std::vector<uint8_t> ihdr;
  put32(ihdr, w);
  put32(ihdr, h);
  ihdr.insert(ihdr.end(), {uint8_t(bit_depth), uint8_t(color_type), 0, 0, 0});
  chunk(png, "IHDR", ihdr);
  // zlib: header, one stored block, Adler-32.
  std::vector<uint8_t> z = {0x78, 0x01, 0x01, uint8_t(raw.size()), 0, uint8_t(~raw.size()), 0xFF};
  z.insert(z.end(), raw.begin(), raw.end());
  uint32_t a = 1, b = 0;
  for (uint8_t x : raw) {
    a = (a + x) % 65521;
    b = (b + a) % 65521;
  }
  put32(z, (b << 16) | a);
  chunk(png, "IDAT", z);
  chunk(png, "IEND", {});
  return png;
}

// An empty IDAT chunk ahead of the data is legal (stb 2.27 meets it with a null memcpy,
// so the decoder drops it first): same pixels as without it.
TEST(ImageDecode, EmptyIdatChunkBeforeTheDataDecodes) {
  const std::vector<uint8_t> plain = tiny_png(2, {0, 1, 2, 3}, 1, 1);
  std::vector<uint8_t> empty_idat;
  chunk(empty_idat, "IDAT", {});
  std::vector<uint8_t> png = plain;
  png.insert(png.begin() + 8 + 25, empty_idat.begin(), empty_idat.end());
  EXPECT_EQ(decode_image(png, "empty-idat.png").rgb, (std::vector<uint8_t>{1, 2, 3}));
}

// libpng (so TensorFlow) refuses a chunk whose CRC does not match; stb ignores CRCs.
TEST(ImageDecode, PngWithAWrongCrcIsDamaged) {
  std::vector<uint8_t> png = tiny_png(2, {0, 1, 2, 3}, 1, 1);
  png[8 + 25 + 8 + 3] ^= 0x40;  // a byte of the IDAT data
  expect_error(png, "damaged PNG (a chunk's CRC does not match its data)");
}

// stb's header reader fails such a PNG as "unknown image type": the size is checked first.
TEST(ImageDecode, HugePngSaysTooManyPixels) {
  expect_error(tiny_png(2, {0, 1, 2, 3}, 20000, 20000), "too many pixels (20000x20000");
}

// Sides of 2^32 - 1 (-1 as the header's unsigned 32 bits): their product overflowed
// int64_t, undefined behaviour that let the image through (a fuzz finding).
TEST(ImageDecode, PngWithTheLargestSidesSaysTooManyPixels) {
  expect_error(tiny_png(2, {0, 1, 2, 3}, -1, -1), "too many pixels (4294967295x4294967295");
}

// Peak memory (ru_maxrss) in MiB so far.
int64_t peak_rss_mib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss / 1024;
}

// A file of `bytes` bytes that starts with `head` and is a hole after it (no disk used).
std::string sparse_file(const std::string& name, const std::vector<uint8_t>& head, off_t bytes) {
  const std::string path = test::temp_path(name);
  std::ofstream(path, std::ios::binary | std::ios::trunc)
      .write(reinterpret_cast<const char*>(head.data()), std::streamsize(head.size()));
  EXPECT_EQ(::truncate(path.c_str(), bytes), 0);
  return path;
}

// A huge file is refused from its size, a refused header from the first bytes: neither is
// read whole (memory stays flat).
TEST(ImageDecode, HugeFilesAreRefusedBeforeBeingRead) {
  const int64_t before = peak_rss_mib();
  const std::string over_limit = sparse_file("sparse-3g.png", tiny_png(2, {0, 1, 2, 3}, 64, 64),
                                             off_t{3} << 30);
  try {
    load_image_file(over_limit);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), over_limit + ": file too large to decode (3221225472 bytes, "
                                                  "more than 2147483648)");
  }
  const std::string huge_png = sparse_file(
      "sparse-huge-header.png", tiny_png(2, {0, 1, 2, 3}, 20000, 20000), off_t{512} << 20);
  EXPECT_THROW(load_image_file(huge_png), Error);
  const std::vector<uint8_t> jpeg = read_bytes(test::source_path("samples/rocket.jpg"));
  const std::string huge_jpeg = sparse_file("sparse-small-budget.jpg", jpeg, off_t{512} << 20);
  DecodeOptions small;
  small.max_pixels = 1000;
  try {
    load_image_file(huge_jpeg, small);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("too many pixels"), std::string::npos) << e.what();
  }
  EXPECT_LT(peak_rss_mib() - before, 128);
  std::filesystem::remove(over_limit);
  std::filesystem::remove(huge_png);
  std::filesystem::remove(huge_jpeg);
}

TEST(ImageDecode, PathWithANulByteIsRefused) {
  const std::string path = test::source_path("samples/chelsea.png");
  try {
    load_image_file(path + std::string("\0junk", 5));
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), path + "\\0junk: a path cannot contain a NUL byte");
  }
}

// A 24-bit BMP of w x h pixels, value (x + 10 y) in every channel, rows stored
// bottom-up (the usual way) or top-down (a negative height).
std::vector<uint8_t> tiny_bmp(int w, int h, bool top_down) {
  const int stride = (w * 3 + 3) / 4 * 4;
  std::vector<uint8_t> bmp(54 + size_t(stride) * h, 0);
  auto put = [&](size_t at, int32_t v) {
    for (int k = 0; k < 4; ++k) bmp[at + k] = uint8_t(uint32_t(v) >> (8 * k));
  };
  bmp[0] = 'B', bmp[1] = 'M';
  put(2, int32_t(bmp.size()));
  put(10, 54);
  put(14, 40);
  put(18, w);
  put(22, top_down ? -h : h);
  bmp[26] = 1, bmp[28] = 24;
  for (int y = 0; y < h; ++y) {
    const int stored = top_down ? y : h - 1 - y;
    for (int x = 0; x < w * 3; ++x) bmp[54 + size_t(stored) * stride + x] = uint8_t(x / 3 + 10 * y);
  }
  return bmp;
}

TEST(ImageDecode, TopDownBmpDecodesLikeBottomUp) {
  const Image down = decode_image(tiny_bmp(5, 3, true), "down.bmp");
  EXPECT_EQ(down.height, 3);
  EXPECT_EQ(down.rgb, decode_image(tiny_bmp(5, 3, false), "up.bmp").rgb);
  EXPECT_EQ(down.rgb[3 * (5 * 2 + 4)], 24);  // pixel (4, 2)
}

// stb reads zeros past the end of a BMP, GIF, PSD or run-length TGA: the decoder must
// notice that the data ran out.
TEST(ImageDecode, TruncatedBmpIsAnError) {
  std::vector<uint8_t> bmp = tiny_bmp(5, 3, false);
  bmp.resize(bmp.size() - 7);
  expect_error(bmp, "truncated BMP (data ends before the image is complete)");
  std::vector<uint8_t> declared = tiny_bmp(1000, 1000, false);
  declared.resize(36 * 1024);
  expect_error(declared, "truncated BMP");
}

TEST(ImageDecode, TruncatedPsdIsAnError) {
  // 2x2 RGB, raw planes: header, three empty sections, compression 0, 12 bytes.
  std::vector<uint8_t> psd = {'8', 'B', 'P', 'S', 0, 1, 0, 0, 0, 0, 0, 0, 0, 3,
                              0, 0, 0, 2, 0, 0, 0, 2, 0, 8, 0, 3};
  psd.insert(psd.end(), 12 + 2, 0);
  for (int i = 0; i < 12; ++i) psd.push_back(uint8_t(40 + i));
  EXPECT_EQ(decode_image(psd, "ok.psd").width, 2);
  psd.resize(psd.size() - 5);
  expect_error(psd, "truncated PSD");
}

TEST(ImageDecode, PsdWithAlphaIsRefused) {
  // 1x1 RGBA, raw planes: a half-transparent dark pixel, which stb_image's matte removal
  // would take below zero in a float cast to a byte.
  std::vector<uint8_t> psd = {'8', 'B', 'P', 'S', 0, 1, 0, 0, 0, 0, 0, 0, 0, 4,
                              0, 0, 0, 1, 0, 0, 0, 1, 0, 8, 0, 3};
  psd.insert(psd.end(), 12 + 2, 0);
  for (uint8_t v : {10, 10, 10, 128}) psd.push_back(v);
  expect_error(psd, "a PSD with more than 3 channels (alpha) is not supported");
}

TEST(ImageDecode, JpegWarningIsKept) {
  auto bytes = read_bytes(test::source_path("tests/data/chelsea_200x133_q90.jpg"));
  EXPECT_EQ(decode_image(bytes, "ok.jpg").warning, "");
  // Entropy-coded data cut short, then the end-of-image marker: libjpeg fills the rest
  // (as TensorFlow's decoder does) and warns.
  bytes.resize(bytes.size() * 2 / 3);
  bytes.insert(bytes.end(), {0xFF, 0xD9});
  const Image image = decode_image(bytes, "cut.jpg");
  EXPECT_NE(image.warning.find("premature end of data segment"), std::string::npos)
      << image.warning;
}

}  // namespace
}  // namespace musiq
