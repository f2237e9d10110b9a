// musiq preprocess IMAGE --output FILE.h5: the decoded pixels and the model's input
// tokens in the official layout (padding tokens included), for parity checks against
// TensorFlow (tools/tf-preprocess-parity).
#include <iostream>

#include "weights/hdf5_file.h"
#include "engine/preprocess/preprocess.h"
#include "tools/musiq/commands.h"

namespace musiq::cli {
namespace {

struct PreprocessOptions {
  std::string image;
  std::string output;
};

int run_preprocess(const PreprocessOptions& o) {
  const Image image = load_image_file(o.image);
  const ModelConfig config;  // the official preprocessing settings
  const Tokens tokens = make_tokens(image, config);

  const OfficialLayout layout = to_official_layout(tokens);
  const int64_t n = layout.count();
  Hdf5Writer out(o.output);
  out.write_uint8("pixels", {image.height, image.width, 3}, image.rgb.data());
  out.write_float32("patches", {n, tokens.patch_values}, layout.patches.data());
  out.write_int32("spatial", {n}, layout.spatial.data());
  out.write_int32("scale_id", {n}, layout.scale_id.data());
  out.write_float32("mask", {n}, layout.mask.data());
  out.commit();
  std::cout << o.output << ": " << n << " tokens (" << tokens.count() << " real)\n";
  return 0;
}

}  // namespace

Command add_preprocess_command(CLI::App& app) {
  auto o = std::make_shared<PreprocessOptions>();
  CLI::App* cmd = app.add_subcommand(
      "preprocess", "Write an image's decoded pixels and input tokens to HDF5 (for parity checks)");
  cmd->add_option("image", o->image, "Image file")->required();
  cmd->add_option("--output", o->output, "Output HDF5 file")->required();
  return [o] { return run_preprocess(*o); };
}

}  // namespace musiq::cli
