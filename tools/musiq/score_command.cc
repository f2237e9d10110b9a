// musiq score IMAGE...: one JSON object per line per image on stdout.
#include <cmath>
#include <iostream>
#include <nlohmann/json.hpp>

#include "engine/error.h"
#include "engine/musiq.h"
#include "engine/weights_locator.h"
#include "tools/musiq/commands.h"

namespace musiq::cli {
namespace {

struct ScoreOptions {
  std::vector<std::string> images;
  std::string model = "koniq";
  std::string weights;
  std::string device = "auto";
};

constexpr const char* kRandomNote =
    "random demo weights (musiq-make-test-model): this score is not meaningful";

int run_score(const ScoreOptions& o) {
  ScorerParams params;
  params.weights_path = locate_weights(o.model, o.weights);
  params.device = parse_device_kind(o.device);
  const std::unique_ptr<Scorer> scorer = Scorer::open(params);
  const ModelInfo& model = scorer->model();
  const DeviceChoice& device = scorer->device();
  if (!device.fallback_reason.empty() && o.device == "auto")
    std::cerr << "musiq: using the CPU: " << device.fallback_reason << "\n";

  int failed = 0;
  for (const std::string& path : o.images) {
    try {
      const ScoreResult r = scorer->score_file(path);
      nlohmann::json record = {{"path", path},
                               {"score", r.score},
                               {"model", model.variant},
                               {"device", device.name},
                               {"width", r.width},
                               {"height", r.height},
                               {"tokens", r.tokens},
                               {"ms", std::round(r.total_ms() * 10) / 10}};
      if (model.random_weights) record["note"] = kRandomNote;
      std::cout << record.dump() << "\n" << std::flush;
    } catch (const Error& e) {
      std::cerr << "musiq: " << e.what() << "\n";
      ++failed;
    }
  }
  return failed ? kExitImagesFailed : 0;
}

}  // namespace

Command add_score_command(CLI::App& app) {
  auto o = std::make_shared<ScoreOptions>();
  CLI::App* cmd = app.add_subcommand("score", "Score images; prints one JSON object per line");
  cmd->add_option("images", o->images, "Image files (JPEG, PNG, BMP, TGA, GIF)")->required();
  cmd->add_option("--model", o->model, "Official model: spaq, koniq, paq2piq or ava")
      ->check(CLI::IsMember({"spaq", "koniq", "paq2piq", "ava"}))
      ->capture_default_str();
  cmd->add_option("--weights", o->weights,
                  "Weights file (HDF5); default $MUSIQ_WEIGHTS_DIR/<model>.h5, then the cache");
  cmd->add_option("--device", o->device, "auto, cpu or cuda")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}))
      ->capture_default_str();
  return [o] { return run_score(*o); };
}

}  // namespace musiq::cli
