// musiq preprocess IMAGE --output FILE.h5: the decoded pixels and the model's input
// tokens in the official layout (padding tokens included), for parity checks against
// TensorFlow (tools/tf-preprocess-parity).
#include <filesystem>
#include <iostream>

#include "engine/developer.h"
#include "engine/musiq.h"  // musiq::Error
#include "tools/musiq/commands.h"

namespace musiq::cli {
namespace {

struct PreprocessOptions {
  std::string image;
  std::string output;
  bool overwrite = false;
};

int run_preprocess(const PreprocessOptions& o) {
  std::error_code ec;
  if (!o.overwrite && std::filesystem::exists(std::filesystem::symlink_status(o.output, ec)))
    throw Error(o.output + ": exists; use --overwrite to replace it");
  const PreprocessDump dump = write_preprocess_dump(o.image, o.output);
  std::cout << o.output << ": " << dump.tokens << " tokens (" << dump.real_tokens << " real)\n";
  return 0;
}

}  // namespace

Command add_preprocess_command(CLI::App& app) {
  auto o = std::make_shared<PreprocessOptions>();
  CLI::App* cmd = app.add_subcommand(
      "preprocess", "Write an image's decoded pixels and input tokens to HDF5 (for parity checks)");
  cmd->add_option("image", o->image, "Image file")->required();
  cmd->add_option("--output", o->output, "Output HDF5 file")->required();
  cmd->add_flag("--overwrite", o->overwrite, "Replace an existing output file");
  return [o] { return run_preprocess(*o); };
}

}  // namespace musiq::cli
