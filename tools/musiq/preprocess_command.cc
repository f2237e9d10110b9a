// musiq preprocess IMAGE --output FILE.h5: the decoded pixels and the model's input
// tokens in the official layout (padding tokens included), for parity checks against
// TensorFlow (tools/tf-preprocess-parity).
#include <iostream>

#include "engine/hdf5_file.h"
#include "engine/preprocess.h"
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

  // Re-insert the padding the engine drops: zero tokens with mask 0 (and, as in the
  // official code, spatial index and scale id 0) after each scale's real tokens.
  std::vector<float> patches, mask;
  std::vector<int32_t> spatial, scale_id;
  int64_t src = 0;
  for (const ScaleGeometry& g : tokens.scales) {
    for (int64_t t = 0; t < g.length; ++t) {
      const bool real = t < g.tokens;
      const float* p = tokens.patches.data() + (src + t) * tokens.patch_values;
      if (real) {
        patches.insert(patches.end(), p, p + tokens.patch_values);
      } else {
        patches.insert(patches.end(), tokens.patch_values, 0.0f);
      }
      spatial.push_back(real ? tokens.spatial[src + t] : 0);
      scale_id.push_back(real ? tokens.scale_id[src + t] : 0);
      mask.push_back(real ? 1.0f : 0.0f);
    }
    src += g.tokens;
  }
  const int64_t n = static_cast<int64_t>(mask.size());
  Hdf5Writer out(o.output);
  out.write_uint8("pixels", {image.height, image.width, 3}, image.rgb.data());
  out.write_float32("patches", {n, tokens.patch_values}, patches.data());
  out.write_int32("spatial", {n}, spatial.data());
  out.write_int32("scale_id", {n}, scale_id.data());
  out.write_float32("mask", {n}, mask.data());
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
