#include "engine/developer.h"

#include "engine/decode/image.h"
#include "engine/preprocess/preprocess.h"
#include "weights/config.h"
#include "weights/hdf5_file.h"

namespace musiq {

PreprocessDump write_preprocess_dump(const std::string& image_path,
                                     const std::string& output_path) {
  const Image image = load_image_file(image_path);
  const ModelConfig config;  // the official preprocessing settings
  const Tokens tokens = make_tokens(image, config);

  const OfficialLayout layout = to_official_layout(tokens);
  const int64_t n = layout.count();
  Hdf5Writer out(output_path);
  out.write_uint8("pixels", {image.height, image.width, 3}, image.rgb.data());
  out.write_float32("patches", {n, tokens.patch_values}, layout.patches.data());
  out.write_int32("spatial", {n}, layout.spatial.data());
  out.write_int32("scale_id", {n}, layout.scale_id.data());
  out.write_float32("mask", {n}, layout.mask.data());
  out.commit();
  return {n, tokens.count()};
}

}  // namespace musiq
