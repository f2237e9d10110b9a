// JPEG through libjpeg-turbo, set as tf.image.decode_jpeg sets it by default
// (tensorflow/core/kernels/image/decode_image_op.cc, core/lib/jpeg/jpeg_mem.cc):
// integer-fast IDCT (JDCT_IFAST) and fancy upsampling, so pixels are bit-identical.
#include <csetjmp>
#include <cstdio>
// jpeglib.h needs FILE and size_t declared first.
#include <jpeglib.h>
#include <jerror.h>  // JWRN_JPEG_EOF

#include "base/error.h"
#include "engine/decode/image.h"

namespace musiq {
namespace {

struct ErrorManager {
  jpeg_error_mgr pub;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
  char warning[JMSG_LENGTH_MAX];  // the first warning, "" if none
  bool truncated;
};

[[noreturn]] void on_error(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<ErrorManager*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, err->message);
  std::longjmp(err->jump, 1);
}

// Warnings (level -1) do not stop decoding, as in TensorFlow (libjpeg fills corrupt data
// in), but the first is kept for the record; except premature end of the file: libjpeg
// would fill the rest with grey, TensorFlow reports an error.
void on_message(j_common_ptr cinfo, int level) {
  auto* err = reinterpret_cast<ErrorManager*>(cinfo->err);
  if (level >= 0) return;
  if (cinfo->err->msg_code == JWRN_JPEG_EOF) err->truncated = true;
  if (err->warning[0] == '\0') (*cinfo->err->format_message)(cinfo, err->warning);
}

// TensorFlow's conversion (core/lib/jpeg/jpeg_mem.cc), integer arithmetic included:
// Adobe files store inverted CMYK.
void cmyk_to_rgb(const uint8_t* cmyk, int width, bool adobe, uint8_t* rgb) {
  for (int x = 0; x < width; ++x) {
    const int c = cmyk[4 * x], m = cmyk[4 * x + 1], y = cmyk[4 * x + 2], k = cmyk[4 * x + 3];
    if (adobe) {
      rgb[3 * x] = static_cast<uint8_t>(k * c / 255);
      rgb[3 * x + 1] = static_cast<uint8_t>(k * m / 255);
      rgb[3 * x + 2] = static_cast<uint8_t>(k * y / 255);
    } else {
      rgb[3 * x] = static_cast<uint8_t>((255 - k) * (255 - c) / 255);
      rgb[3 * x + 1] = static_cast<uint8_t>((255 - k) * (255 - m) / 255);
      rgb[3 * x + 2] = static_cast<uint8_t>((255 - k) * (255 - y) / 255);
    }
  }
}

// Frees libjpeg's memory however decode_jpeg leaves: a return, its own errors, or an
// exception from options.check_size (which may throw any type). Destroying twice, or an
// object never created, is a no-op in libjpeg.
struct DecompressGuard {
  jpeg_decompress_struct* cinfo;
  ~DecompressGuard() { jpeg_destroy_decompress(cinfo); }
};

}  // namespace

Image decode_jpeg(const std::vector<uint8_t>& bytes, const std::string& name,
                  const DecodeOptions& options) {
  jpeg_decompress_struct cinfo{};
  ErrorManager err{};
  cinfo.err = jpeg_std_error(&err.pub);
  err.pub.error_exit = on_error;
  err.pub.emit_message = on_message;
  // Objects with destructors are declared before setjmp, so a longjmp skips none.
  Image image;
  std::vector<uint8_t> row_buffer;
  DecompressGuard guard{&cinfo};
  if (setjmp(err.jump)) {
    throw Error(name + ": invalid JPEG (" + err.message + ")");
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, bytes.data(), static_cast<unsigned long>(bytes.size()));
  jpeg_read_header(&cinfo, TRUE);

  const bool cmyk = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
  check_declared_size(name, cinfo.image_width, cinfo.image_height, options);
  if (cinfo.num_components != 1 && cinfo.num_components != 3 && !cmyk)
    throw Error(name + ": unsupported JPEG colour layout (" +
                std::to_string(cinfo.num_components) + " components)");
  const bool gray = cinfo.num_components == 1;
  cinfo.out_color_space = gray ? JCS_GRAYSCALE : cmyk ? JCS_CMYK : JCS_RGB;
  cinfo.dct_method = JDCT_IFAST;
  cinfo.do_fancy_upsampling = TRUE;
  jpeg_start_decompress(&cinfo);

  image.width = static_cast<int>(cinfo.output_width);
  image.height = static_cast<int>(cinfo.output_height);
  const size_t row_values = size_t(image.width) * cinfo.output_components;
  image.rgb.resize(size_t(image.width) * image.height * 3);
  row_buffer.resize(gray || cmyk ? row_values : 0);
  while (cinfo.output_scanline < cinfo.output_height && !err.truncated) {
    const size_t y = cinfo.output_scanline;
    uint8_t* dst = image.rgb.data() + y * image.width * 3;
    JSAMPROW row = row_buffer.empty() ? dst : row_buffer.data();
    jpeg_read_scanlines(&cinfo, &row, 1);
    if (gray) {
      for (int x = 0; x < image.width; ++x) dst[3 * x] = dst[3 * x + 1] = dst[3 * x + 2] = row[x];
    } else if (cmyk) {
      cmyk_to_rgb(row, image.width, cinfo.saw_Adobe_marker, dst);
    }
  }
  if (err.truncated)
    throw Error(name + ": truncated JPEG (data ends before the image is complete)");
  jpeg_finish_decompress(&cinfo);
  image.warning = err.warning;
  return image;
}

}  // namespace musiq
