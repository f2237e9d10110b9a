// musiq bench [IMAGE...]: how long scoring takes, as one JSON object on stdout.
// Each step decodes and prepares --batch images, cycling through the IMAGE list, and scores
// them in one packed forward pass (Scorer::score_batch; split only past its row budget);
// --warmup steps are run first and not recorded. Reported: the latency of a
// step (mean, std, min, p50, p90, p99 in ms), throughput in images/s, and per image the
// decode, preprocess, upload (GPU only) and model times apart; and, under the names
// the run_musiq_gpu.py tool printed, average_time_ms and std_time_ms (the step latency's
// mean and std), runs, device and gpu_available. Without IMAGE it times samples/rocket.jpg
// of the source tree; without weights it makes a full-size random model in the cache
// (timing does not depend on weight values).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "engine/musiq.h"
#include "tools/musiq/bench.h"
#include "tools/musiq/commands.h"
#include "tools/musiq/precision_option.h"
#include "tools/musiq/target_size_option.h"

#ifndef MUSIQ_SOURCE_DIR
#error "MUSIQ_SOURCE_DIR must name the source tree (CMakeLists.txt defines it)"
#endif

namespace musiq::cli {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr const char* kRandomWeights = "random (timing does not depend on weight values)";
constexpr const char* kBatching =
    "packed: the images of a step share one forward pass (Scorer::score_batch), split only "
    "past batch_rows";

using Json = nlohmann::ordered_json;

double round3(double x) { return std::round(x * 1000) / 1000; }

// mean, sample std (n - 1), min and percentiles interpolated between closest ranks
// (numpy's default), of values in ms, rounded to the microsecond.
Json summarize(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const double n = double(v.size());
  double mean = 0;
  for (double x : v) mean += x / n;
  double ss = 0;
  for (double x : v) ss += (x - mean) * (x - mean);
  auto percentile = [&](double q) {
    const double pos = q * (n - 1);
    const size_t lo = static_cast<size_t>(std::floor(pos));
    const size_t hi = std::min(lo + 1, v.size() - 1);
    return v[lo] + (v[hi] - v[lo]) * (pos - double(lo));
  };
  return {{"mean", round3(mean)},
          {"std", round3(v.size() > 1 ? std::sqrt(ss / (n - 1)) : 0.0)},
          {"min", round3(v.front())},
          {"p50", round3(percentile(0.5))},
          {"p90", round3(percentile(0.9))},
          {"p99", round3(percentile(0.99))}};
}

// --weights, else the model's weights where `musiq score` finds them, else a full-size
// random model made once in the cache. Sets `random` when it made or reused that one.
std::string bench_weights(const BenchOptions& o, bool& random) {
  random = false;
  if (!o.weights.empty()) return o.weights;
  try {
    return locate_weights(o.model, "");
  } catch (const Error&) {
  }
  random = true;
  const int classes = o.model == "ava" ? 10 : 1;
  const std::string path = weights_cache_dir() + "/random-full-seed0-classes" +
                           std::to_string(classes) + ".h5";
  if (fs::exists(path)) return path;
  std::error_code ec;
  fs::create_directories(weights_cache_dir(), ec);
  const std::string partial = path + ".partial";
  const std::string command = "'" MUSIQ_SOURCE_DIR "/tools/musiq-make-test-model' '" +
                              partial + "' --seed 0 --size full --num-classes " +
                              std::to_string(classes) + " 1>&2";
  std::cerr << "musiq: no weights for model '" << o.model << "'; writing a random full-size "
            << "model to " << path << " (timing does not depend on weight values)\n";
  if (std::system(command.c_str()) != 0 || !fs::exists(partial))
    throw Error("could not make a random model: " + command);
  fs::rename(partial, path);
  return path;
}

}  // namespace

int run_bench(const BenchOptions& o) {
  std::vector<std::string> images = o.images;
  if (images.empty()) {
    const std::string sample = MUSIQ_SOURCE_DIR "/samples/rocket.jpg";
    if (!fs::exists(sample))
      throw Error("no IMAGE given and the default " + sample + " is missing; pass an image");
    images.push_back(sample);
  }
  bool random = false;
  ScorerParams params;
  params.weights_path = bench_weights(o, random);
  params.device = parse_device_kind(o.device);
  params.precision = parse_precision(o.precision);
  params.decode.target = o.target;
  const std::unique_ptr<Scorer> scorer = Scorer::open(params);
  const DeviceChoice& device = scorer->device();
  if (!device.fallback_reason.empty() && o.device == "auto")
    std::cerr << "musiq: using the CPU: " << device.fallback_reason << "\n";

  std::vector<double> step_ms, decode_ms, preprocess_ms, upload_ms, model_ms, total_ms;
  std::vector<ScoreResult> first(images.size());
  size_t next = 0;
  for (int step = 0; step < o.warmup + o.runs; ++step) {
    const bool recorded = step >= o.warmup;
    const auto start = Clock::now();
    std::vector<PreparedImagePtr> prepared;
    std::vector<const PreparedImage*> batch;
    for (int b = 0; b < o.batch; ++b) {
      prepared.push_back(prepare_image_file(images[(next + b) % images.size()],
                                            scorer->model().config, params.decode,
                                            device.kind));
      batch.push_back(prepared.back().get());
    }
    const std::vector<BatchItem> scored = scorer->score_batch(batch);
    for (int b = 0; b < o.batch; ++b, ++next) {
      if (!scored[b].ok()) throw Error(images[next % images.size()] + ": " + scored[b].error);
      const ScoreResult& r = scored[b].result;
      if (next < images.size()) first[next] = r;
      if (!recorded) continue;
      decode_ms.push_back(r.decode_ms);
      preprocess_ms.push_back(r.preprocess_ms);
      upload_ms.push_back(r.upload_ms);
      model_ms.push_back(r.model_ms);
      total_ms.push_back(r.total_ms());
    }
    if (recorded)
      step_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
  }

  double seconds = 0;
  for (double ms : step_ms) seconds += ms / 1000;
  Json image_list = Json::array();
  for (size_t i = 0; i < images.size() && i < next; ++i)
    image_list.push_back({{"path", images[i]},
                          {"width", first[i].width},
                          {"height", first[i].height},
                          {"tokens", first[i].tokens}});
  const ModelInfo& model = scorer->model();
  random = random || model.random_weights;
  const Json latency = summarize(step_ms);
  Json out = {
      {"device", device.name},
      {"precision", precision_name(scorer->precision())},
      {"gpu_available", gpu_available(device)},
      {"device_description", device.description},
      {"cpu_kernels", query_cpu_info().kernels},
      {"model", model.variant},
      {"weights", random ? std::string(kRandomWeights) : model.weights_path},
      {"weights_path", model.weights_path},
      {"images", image_list},
      {"runs", o.runs},
      {"warmup", o.warmup},
      {"batch", o.batch},
      {"batching", kBatching},
      {"batch_rows", params.batch_rows},
      {"latency_ms", latency},
      {"average_time_ms", latency["mean"]},
      {"std_time_ms", latency["std"]},
      {"throughput_images_per_s", round3(double(o.runs) * o.batch / seconds)},
      {"per_image_ms",
       {{"decode", summarize(decode_ms)},
        {"preprocess", summarize(preprocess_ms)},
        {"upload", summarize(upload_ms)},
        {"model", summarize(model_ms)},
        {"total", summarize(total_ms)}}}};
  if (o.target.set()) out["target_size"] = {o.target.width, o.target.height};
  if (scorer->precision() == Precision::kBf16 && device.kind == DeviceKind::kCpu)
    out["bf16_kernel"] = query_cpu_info().bf16_kernel;
  std::cout << out.dump(2) << "\n";
  return 0;
}

Command add_bench_command(CLI::App& app) {
  auto o = std::make_shared<BenchOptions>();
  CLI::App* cmd = app.add_subcommand(
      "bench", "Time scoring (latency, throughput, decode/preprocess/model); prints JSON");
  cmd->add_option("images", o->images,
                  "Image files, cycled through (default: samples/rocket.jpg of the source tree)");
  cmd->add_option("--model", o->model, "Official model: " + alternatives(kModelNames))
      ->check(CLI::IsMember(kModelNames))
      ->capture_default_str();
  cmd->add_option("--weights", o->weights,
                  "Weights file (HDF5); default as for score, else a random full-size model "
                  "made in the cache");
  cmd->add_option("--device", o->device, alternatives(kDeviceNames))
      ->check(CLI::IsMember(kDeviceNames))
      ->capture_default_str();
  add_precision_option(*cmd, o->precision);
  cmd->add_option("--runs", o->runs, "Timed steps")
      ->check(CLI::Range(1, 1000000))
      ->capture_default_str();
  cmd->add_option("--warmup", o->warmup, "Untimed steps first")
      ->check(CLI::Range(0, 1000000))
      ->capture_default_str();
  cmd->add_option("--batch", o->batch,
                  "Images per step, scored in one packed forward pass (each step holds them "
                  "all: at most 4096)")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
  add_target_size_option(*cmd, o->target);
  return [o] { return run_bench(*o); };
}

}  // namespace musiq::cli
