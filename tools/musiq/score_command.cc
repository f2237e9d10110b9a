// musiq score: score images, files or whole collections, with one or several models.
#include <csignal>
#include <iostream>
#include <sstream>

#include "engine/error.h"
#include "engine/musiq.h"
#include "engine/weights_locator.h"
#include "tools/musiq/commands.h"
#include "tools/musiq/inputs.h"
#include "tools/musiq/prefetcher.h"
#include "tools/musiq/progress.h"
#include "tools/musiq/records.h"

namespace musiq::cli {
namespace {

struct ScoreOptions {
  InputSpec inputs;
  std::string shard;
  std::string models = "koniq";
  std::string weights;
  std::string device = "auto";
  std::string format = "jsonl";
  std::string output;
  bool resume = false, overwrite = false, quiet = false;
  int threads = 2;
  int batch = 0;  // 0: the device's default below
  int64_t max_pixels = DecodeOptions{}.max_pixels;
};

// Images per packed forward pass when --batch is not given (bench/RESULTS.md, "Packed
// batches"). CPU: batch 8 scored small, medium and mixed collections 1.07x to 2.4x faster
// than batch 1 in interleaved runs on the shared 2-core machine. GPU (unmeasured): one
// 1024x768 image (919 rows) gives the encoder GEMMs ~72 output tiles and attention 90
// blocks, under one wave of an H100/H200's 132 SMs; 16 such images (14,704 rows, within
// the default row budget) fill several waves.
constexpr int kDefaultBatchCpu = 8;
constexpr int kDefaultBatchGpu = 16;

volatile std::sig_atomic_t g_stop = 0;
void request_stop(int) { g_stop = 1; }

std::vector<std::string> split_models(const std::string& list) {
  std::vector<std::string> models;
  std::stringstream s(list);
  for (std::string m; std::getline(s, m, ',');)
    if (!m.empty()) models.push_back(m);
  if (models.empty()) throw Error("--model: no model named");
  return models;
}

bool same_preprocessing(const ModelConfig& a, const ModelConfig& b) {
  return a.patch_size == b.patch_size && a.hse_grid_size == b.hse_grid_size &&
         a.longer_side_lengths == b.longer_side_lengths &&
         a.max_seq_len_from_original_res == b.max_seq_len_from_original_res;
}

struct NamedScorer {
  std::string label;  // the --model name, or the file's variant for --weights
  std::unique_ptr<Scorer> scorer;
};

std::vector<NamedScorer> open_scorers(const ScoreOptions& o) {
  const std::vector<std::string> names = split_models(o.models);
  if (!o.weights.empty() && names.size() > 1)
    throw Error("--weights names one file: use it with a single --model");
  std::vector<NamedScorer> scorers;
  for (const std::string& name : names) {
    ScorerParams params;
    params.weights_path = locate_weights(name, o.weights);
    params.device = parse_device_kind(o.device);
    params.decode.max_pixels = o.max_pixels;
    std::unique_ptr<Scorer> scorer = Scorer::open(params);
    const std::string label = o.weights.empty() ? name : scorer->model().variant;
    scorers.push_back({label, std::move(scorer)});
    if (!same_preprocessing(scorers.front().scorer->model().config,
                            scorers.back().scorer->model().config))
      throw Error(params.weights_path + ": preprocessing settings differ from the other models'");
  }
  const DeviceChoice& device = scorers.front().scorer->device();
  // Worth a note only when a GPU is there and still not used.
  if (device.gpu_present && device.kind == DeviceKind::kCpu && !o.quiet)
    std::cerr << "musiq: using the CPU: " << device.fallback_reason << "\n";
  return scorers;
}

int run_score(ScoreOptions o) {
  if (!o.shard.empty()) parse_shard(o.shard, o.inputs.shard_index, o.inputs.shard_count);
  const Format format = parse_format(o.format);
  if (o.inputs.paths.empty() && o.inputs.files_from.empty())
    throw Error("no images given (paths, directories, or --files-from FILE)");
  const std::vector<NamedScorer> scorers = open_scorers(o);
  const InputList inputs = collect_inputs(o.inputs);
  if (inputs.skipped_non_images && !o.quiet)
    std::cerr << "musiq: skipped " << inputs.skipped_non_images
              << " files without an image extension\n";
  const std::unique_ptr<RecordSink> sink = RecordSink::open(format, o.output, o.resume, o.overwrite);

  // Images with at least one model still to run (all of them unless resuming).
  std::vector<std::string> todo;
  for (const std::string& path : inputs.images)
    for (const NamedScorer& s : scorers)
      if (!sink->done().count({path, s.label})) {
        todo.push_back(path);
        break;
      }
  if (inputs.images.size() != todo.size() && !o.quiet)
    std::cerr << "musiq: resuming: " << inputs.images.size() - todo.size()
              << " images already in " << o.output << "\n";

  std::signal(SIGINT, request_stop);
  std::signal(SIGTERM, request_stop);
  const DeviceKind device = scorers.front().scorer->device().kind;
  const size_t batch = size_t(o.batch > 0 ? o.batch
                                          : device == DeviceKind::kCuda ? kDefaultBatchGpu
                                                                        : kDefaultBatchCpu);
  Progress progress(static_cast<int64_t>(todo.size()), !o.quiet);
  Prefetcher prefetcher(todo, scorers.front().scorer->model().config, DecodeOptions{o.max_pixels},
                        device, o.threads,
                        std::max(2 * static_cast<size_t>(std::max(o.threads, 1)), batch));
  int64_t done = 0, failed = 0;
  for (size_t first = 0; first < todo.size() && !g_stop; first += batch) {
    // Up to `batch` images in input order; those that failed to decode are records too.
    std::vector<Prefetcher::Item> items;
    for (size_t i = first; i < std::min(first + batch, todo.size()); ++i)
      items.push_back(prefetcher.take(i));
    std::vector<std::string> errors(items.size());  // the first error per image
    for (size_t j = 0; j < items.size(); ++j) errors[j] = items[j].error;
    for (const auto& [label, scorer] : scorers) {
      std::vector<const PreparedImage*> ready;  // decoded, and not yet done for this model
      for (size_t j = 0; j < items.size(); ++j)
        if (items[j].image && !sink->done().count({todo[first + j], label}))
          ready.push_back(items[j].image.get());
      const std::vector<BatchItem> scored = scorer->score_batch(ready);
      size_t k = 0;
      for (size_t j = 0; j < items.size(); ++j) {
        Record r;
        r.path = todo[first + j];
        r.model = label;
        if (sink->done().count({r.path, r.model})) continue;
        const BatchItem* s = items[j].image ? &scored[k++] : nullptr;
        if (s && s->ok()) {
          r.score = s->result.score;
          r.device = scorer->device().name;
          r.width = s->result.width;
          r.height = s->result.height;
          r.tokens = s->result.tokens;
          r.ms = s->result.total_ms();
          r.random_weights = scorer->model().random_weights;
        } else {
          r.error = s ? r.path + ": " + s->error : items[j].error;
          if (errors[j].empty()) errors[j] = r.error;
        }
        sink->write(r);
      }
    }
    for (const std::string& error : errors) {
      if (!error.empty()) {
        ++failed;
        if (!o.quiet) progress.note("musiq: " + error);
      }
      progress.update(++done, failed);
    }
  }
  sink->finish();
  progress.finish(done, failed);
  if (g_stop) {
    std::cerr << "musiq: interrupted after " << done << " of " << todo.size() << " images"
              << (o.output.empty() ? "" : "; continue with --resume") << "\n";
    return 130;
  }
  return failed ? kExitImagesFailed : 0;
}

}  // namespace

Command add_score_command(CLI::App& app) {
  auto o = std::make_shared<ScoreOptions>();
  CLI::App* cmd = app.add_subcommand("score", "Score images, directories or file lists");
  cmd->add_option("paths", o->inputs.paths, "Image files and directories");
  cmd->add_flag("-r,--recursive", o->inputs.recursive, "Descend into subdirectories");
  cmd->add_option("--files-from", o->inputs.files_from, "File with one path per line ('-': stdin)");
  cmd->add_option("--model", o->models,
                  "Official model(s), comma-separated: spaq, koniq, paq2piq, ava")
      ->capture_default_str();
  cmd->add_option("--weights", o->weights,
                  "Weights file (HDF5); default $MUSIQ_WEIGHTS_DIR/<model>.h5, then the cache");
  cmd->add_option("--device", o->device, "auto, cpu or cuda")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}))
      ->capture_default_str();
  cmd->add_option("--format", o->format, "json, jsonl, csv or table")
      ->check(CLI::IsMember({"json", "jsonl", "csv", "table"}))
      ->capture_default_str();
  cmd->add_option("-o,--output", o->output, "Write records to FILE instead of stdout");
  cmd->add_flag("--resume", o->resume, "Continue --output FILE, skipping images already in it");
  cmd->add_flag("--overwrite", o->overwrite, "Replace an existing --output FILE");
  cmd->add_option("--threads", o->threads, "Decoding/preprocessing threads")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  cmd->add_option("--batch", o->batch,
                  "Images per packed forward pass (default: 8 on the CPU, 16 on a GPU)")
      ->check(CLI::Range(1, 4096));
  cmd->add_option("--shard", o->shard, "K/N: score only shard K (0-based) of N of the sorted input");
  cmd->add_option("--max-pixels", o->max_pixels, "Refuse larger images (checked before decoding)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_flag("-q,--quiet", o->quiet, "No progress or notes on stderr");
  return [o] { return run_score(*o); };
}

}  // namespace musiq::cli
