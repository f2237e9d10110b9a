// musiq score: score images, files or whole collections, with one or several models.
#include <algorithm>
#include <atomic>
#include <iostream>
#include <limits>
#include <mutex>
#include <sstream>

#include "engine/musiq.h"
#include "tools/musiq/bench.h"
#include "tools/musiq/commands.h"
#include "tools/musiq/input_items.h"
#include "tools/musiq/inputs.h"
#include "tools/musiq/model_runner.h"
#include "tools/musiq/prefetcher.h"
#include "tools/musiq/progress.h"
#include "tools/musiq/records.h"
#include "tools/musiq/stop_signals.h"
#include "tools/musiq/tar_reader.h"
#include "tools/musiq/target_size_option.h"

namespace musiq::cli {
namespace {

struct ScoreOptions {
  InputSpec inputs;
  std::vector<std::string> images;  // --image PATH, repeatable: more inputs
  std::string shard;
  std::string models = "koniq";
  bool model_given = false;  // --model on the command line (not the default)
  std::string weights;
  std::string device = "auto";
  std::string format = "jsonl";
  std::string output;
  bool resume = false, overwrite = false, quiet = false, strict = false;
  int threads = 2;
  int batch = 0;  // 0: the device's default below
  int64_t max_pixels = DecodeOptions{}.max_pixels;
  int64_t max_tokens = DecodeOptions{}.max_tokens;
  TargetSize target;
  bool benchmark = false;  // time scoring as `musiq bench` does, instead of records
  int runs = 10, warmup = 2;
};

std::vector<std::string> split_models(const std::string& list) {
  std::vector<std::string> models;
  std::stringstream s(list);
  for (std::string m; std::getline(s, m, ',');)
    if (!m.empty()) models.push_back(m);
  if (models.empty()) throw Error("--model: no model named");
  for (size_t i = 0; i < models.size(); ++i) {
    const std::string& m = models[i];
    if (std::find(kModelNames.begin(), kModelNames.end(), m) == kModelNames.end())
      throw Error("--model: unknown model '" + m + "' (use " + alternatives(kModelNames) + ")");
    if (std::find(models.begin(), models.begin() + i, m) != models.begin() + i)
      throw Error("--model: '" + m + "' named twice");
  }
  return models;
}

bool same_preprocessing(const ModelConfig& a, const ModelConfig& b) {
  return a.patch_size == b.patch_size && a.hse_grid_size == b.hse_grid_size &&
         a.longer_side_lengths == b.longer_side_lengths &&
         a.max_seq_len_from_original_res == b.max_seq_len_from_original_res;
}

DecodeOptions decode_options(const ScoreOptions& o) {
  DecodeOptions decode;
  decode.max_pixels = o.max_pixels;
  decode.max_tokens = o.max_tokens;
  decode.target = o.target;
  return decode;
}

std::vector<ModelRunner> open_models(const ScoreOptions& o) {
  const std::vector<std::string> names = split_models(o.models);
  if (!o.weights.empty() && names.size() > 1)
    throw Error("--weights names one file: use it with a single --model");
  std::vector<ModelRunner> runners;
  for (const std::string& name : names) {
    ScorerParams params;
    params.weights_path = locate_weights(name, o.weights);
    if (o.weights.empty() || o.model_given) params.model_name = name;
    params.device = parse_device_kind(o.device);
    params.decode = decode_options(o);
    std::unique_ptr<Scorer> scorer = Scorer::open(params);
    const std::string label = o.weights.empty() ? name : scorer->model().variant;
    auto open_on_cpu = [params]() mutable {
      params.device = DeviceKind::kCpu;
      return backend_for(Scorer::open(params));
    };
    runners.emplace_back(label, backend_for(std::move(scorer)), params.device, open_on_cpu);
    if (!same_preprocessing(runners.front().backend().model().config,
                            runners.back().backend().model().config))
      throw Error(params.weights_path + ": preprocessing settings differ from the other models'");
  }
  const DeviceChoice& device = runners.front().backend().device();
  // Worth a note only when a GPU is there and still not used.
  if (device.gpu_present && device.kind == DeviceKind::kCpu && !o.quiet)
    std::cerr << "musiq: using the CPU: " << device.fallback_reason << "\n";
  return runners;
}

// Prepared images a run holds in one batch, and again decoded ahead of it, so memory stays
// bounded whatever --batch and the images' sizes: tokens take 12 KB each on the CPU, 10,900
// of them fit (a 1024x768 photo makes 919); a larger image (a 12-MP photo: 146 MB) goes alone.
constexpr size_t kHeldBytes = size_t{128} << 20;

std::string interruption_note(const ScoreOptions& o, Format format, int64_t done,
                              size_t total) {
  std::string note = "musiq: interrupted after " + std::to_string(done) + " of " +
                     std::to_string(total) + " images";
  if (o.output.empty()) return note + "\n";
  if (can_resume(format)) return note + "; continue with --resume\n";
  return note + "; " + o.output + " holds their records (--resume needs --format jsonl or csv)\n";
}

// --benchmark: the images named, timed by `musiq bench`'s measurement.
int run_benchmark(const ScoreOptions& o, const InputList& inputs) {
  if (!o.output.empty() || o.resume || o.overwrite)
    throw Error(
        "--benchmark prints one JSON object on stdout: drop --output, --resume, --overwrite");
  BenchOptions bench;
  bench.images = inputs.images;
  const std::vector<std::string> models = split_models(o.models);
  if (models.size() > 1) throw Error("--benchmark times one model: name a single --model");
  bench.model = models.front();
  bench.weights = o.weights;
  bench.device = o.device;
  bench.runs = o.runs;
  bench.warmup = o.warmup;
  if (o.batch > 0) bench.batch = o.batch;
  bench.target = o.target;
  return run_bench(bench);
}

int run_score(ScoreOptions o) {
  if (!o.shard.empty()) parse_shard(o.shard, o.inputs.shard_index, o.inputs.shard_count);
  const Format format = parse_format(o.format);
  o.inputs.paths.insert(o.inputs.paths.end(), o.images.begin(), o.images.end());
  if (o.inputs.paths.empty() && o.inputs.files_from.empty())
    throw Error("no images given (paths, --image, directories, or --files-from FILE)");
  const InputList inputs = collect_inputs(o.inputs);
  if (o.benchmark) return run_benchmark(o, inputs);
  std::vector<ModelRunner> models = open_models(o);
  int64_t skipped_members = 0;
  const std::vector<InputItem> all_items = expand_tar_shards(inputs.images, skipped_members);
  const bool gpu_found = gpu_available(models.front().backend().device());
  if (inputs.skipped_non_images && !o.quiet)
    std::cerr << "musiq: skipped " << inputs.skipped_non_images
              << " files without an image extension\n";
  if (skipped_members && !o.quiet)
    std::cerr << "musiq: skipped " << skipped_members
              << " tar members without an image extension\n";
  const std::unique_ptr<RecordSink> sink = RecordSink::open(format, o.output, o.resume, o.overwrite);

  // Images with at least one model still to run (all of them unless resuming).
  auto done_already = [&](const InputItem& item, const std::string& model) {
    return sink->done().count({item_identity(item.path, item.member), model}) > 0;
  };
  std::vector<InputItem> todo;
  for (const InputItem& item : all_items)
    for (const ModelRunner& m : models)
      if (!done_already(item, m.label())) {
        todo.push_back(item);
        break;
      }
  if (all_items.size() != todo.size() && !o.quiet)
    std::cerr << "musiq: resuming: " << all_items.size() - todo.size()
              << " images already in " << o.output << "\n";

  std::timed_mutex output;  // the sink, between this thread and a stop signal
  std::atomic<int64_t> done{0};  // read by the stop signal's watcher
  int64_t failed = 0;
  StopSignals signals([&](int) {
    std::unique_lock<std::timed_mutex> lock(output, kOutputWait);
    if (!lock.owns_lock()) {
      // This thread is blocked in a write (a pipe nobody reads): the output stays as it is.
      std::cerr << "\nmusiq: the output is not being read; stopping without finishing it "
                   "(its last record may be cut short)\n";
    } else {
      try {
        sink->finish();
      } catch (const Error& e) {
        std::cerr << "\nmusiq: " << e.what() << "\n";
      }
    }
    std::cerr << "\n" << interruption_note(o, format, done, todo.size());
  });
  const DeviceKind device = models.front().backend().device().kind;
  const size_t batch = size_t(o.batch > 0 ? o.batch : default_batch_images(device));
  Progress progress(static_cast<int64_t>(todo.size()), !o.quiet);
  std::vector<std::string> names;
  std::vector<size_t> tar_turn(todo.size());  // the order tar members are read in
  for (size_t i = 0, turns = 0; i < todo.size(); ++i) {
    names.push_back(todo[i].name());
    if (todo[i].in_tar()) tar_turn[i] = turns++;
  }
  TarMemberReader tar_reader;
  const ModelConfig& config = models.front().backend().model().config;
  const DecodeOptions decode = decode_options(o);
  auto load = [&](size_t i) -> PreparedImagePtr {
    const InputItem& item = todo[i];
    if (!item.error.empty()) throw Error(item.error);
    if (!item.in_tar()) return prepare_image_file(item.path, config, decode, device);
    return prepare_encoded_image(tar_reader.read(tar_turn[i], item), item.name(), config, decode,
                                 device);
  };
  Prefetcher prefetcher(names, load, o.threads,
                        std::max(2 * static_cast<size_t>(std::max(o.threads, 1)), batch),
                        kHeldBytes);
  for (size_t first = 0; first < todo.size() && !signals.stop_requested();) {
    // Up to `batch` images in input order, fewer once they hold kHeldBytes (a large image
    // alone); those that failed to decode are records too.
    std::vector<Prefetcher::Item> items;
    size_t held = 0;
    for (size_t i = first; i < std::min(first + batch, todo.size()) && held < kHeldBytes; ++i) {
      items.push_back(prefetcher.take(i));
      if (items.back().image) held += prepared_image_bytes(*items.back().image);
    }
    std::vector<std::string> errors(items.size());  // the first error per image
    for (size_t j = 0; j < items.size(); ++j) errors[j] = items[j].error;
    for (ModelRunner& model : models) {
      std::vector<std::string> paths;  // decoded, and not yet done for this model
      std::vector<const PreparedImage*> ready;
      std::vector<size_t> item_of;
      for (size_t j = 0; j < items.size(); ++j)
        if (items[j].image && !done_already(todo[first + j], model.label())) {
          paths.push_back(todo[first + j].name());
          ready.push_back(items[j].image.get());
          item_of.push_back(j);
        }
      std::vector<Record> records = model.score(paths, ready);
      for (size_t k = 0; k < records.size(); ++k) {
        Record& r = records[k];
        r.path = todo[first + item_of[k]].path;  // a member's record names its shard apart
        r.member = todo[first + item_of[k]].member;
        if (o.strict && !r.warning.empty()) {
          Record refused;
          refused.path = r.path;
          refused.member = r.member;
          refused.model = r.model;
          refused.error = paths[k] + ": decoder warning: " + r.warning + " (refused by --strict)";
          r = refused;
        }
        if (r.error.empty()) {
          r.gpu_available = gpu_found;
          r.scored_width = o.target.width;
          r.scored_height = o.target.height;
        }
        if (errors[item_of[k]].empty()) errors[item_of[k]] = r.error;
      }
      std::lock_guard<std::timed_mutex> lock(output);
      size_t k = 0;
      for (size_t j = 0; j < items.size(); ++j) {
        if (done_already(todo[first + j], model.label())) continue;
        if (items[j].image) {
          sink->write(records[k++]);
          continue;
        }
        Record r;
        r.path = todo[first + j].path;
        r.member = todo[first + j].member;
        r.model = model.label();
        r.error = items[j].error;
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
    first += items.size();
  }
  {
    std::lock_guard<std::timed_mutex> lock(output);
    sink->finish();
  }
  progress.finish(done, failed);
  if (signals.stop_requested()) {
    std::cerr << interruption_note(o, format, done, todo.size());
    return 128 + signals.signal();
  }
  return failed ? kExitImagesFailed : 0;
}

}  // namespace

Command add_score_command(CLI::App& app) {
  auto o = std::make_shared<ScoreOptions>();
  CLI::App* cmd = app.add_subcommand("score", "Score images, directories or file lists");
  cmd->add_option("paths", o->inputs.paths,
                  "Image files, directories and WebDataset tar shards (*.tar)");
  cmd->add_option("--image", o->images, "An image file (repeatable; as the paths)")
      ->allow_extra_args(false);
  cmd->add_flag("-r,--recursive", o->inputs.recursive, "Descend into subdirectories");
  cmd->add_option("--files-from", o->inputs.files_from, "File with one path (image, directory or tar shard) per line ('-': stdin)");
  CLI::Option* model = cmd->add_option("--model", o->models,
                  "Official model(s), comma-separated: " + alternatives(kModelNames))
      ->capture_default_str();
  cmd->add_option("--weights", o->weights,
                  "Weights file (HDF5); default $MUSIQ_WEIGHTS_DIR/<model>.h5, then the cache");
  cmd->add_option("--device", o->device, alternatives(kDeviceNames))
      ->check(CLI::IsMember(kDeviceNames))
      ->capture_default_str();
  cmd->add_option("--format", o->format, "json, jsonl, csv or table")
      ->check(CLI::IsMember({"json", "jsonl", "csv", "table"}))
      ->capture_default_str();
  cmd->add_option("-o,--output", o->output, "Write records to FILE instead of stdout");
  CLI::Option* resume =
      cmd->add_flag("--resume", o->resume, "Continue --output FILE, skipping images already in it");
  cmd->add_flag("--overwrite", o->overwrite, "Replace an existing --output FILE")->excludes(resume);
  cmd->add_option("--threads", o->threads, "Decoding/preprocessing threads")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  cmd->add_option("--batch", o->batch,
                  "Images per packed forward pass (default: 8 on the CPU, 16 on a GPU; "
                  "--benchmark: 1)")
      ->check(CLI::Range(1, 4096));
  cmd->add_option("--shard", o->shard, "K/N: score only shard K (0-based) of N of the sorted input");
  cmd->add_option("--max-pixels", o->max_pixels, "Refuse larger images (checked before decoding)")
      ->check(positive_count)
      ->capture_default_str();
  cmd->add_option("--max-tokens", o->max_tokens,
                  "Refuse images whose sequence would be longer (estimated from the header "
                  "before decoding; time grows with its square; the default takes 50-MP photos)")
      ->check(positive_count)
      ->capture_default_str();
  cmd->add_flag("--strict", o->strict,
                "Refuse images the decoder warns about (corrupt data it would fill in)");
  cmd->add_flag("-q,--quiet", o->quiet, "No progress or notes on stderr");
  add_target_size_option(*cmd, o->target);
  CLI::Option* benchmark = cmd->add_flag(
      "--benchmark", o->benchmark,
      "Time scoring instead (as `musiq bench`: one JSON object with average_time_ms, "
      "std_time_ms, runs, device, gpu_available and the latency split)");
  cmd->add_option("--runs", o->runs, "--benchmark: timed runs")
      ->check(CLI::Range(1, 1000000))
      ->needs(benchmark)
      ->capture_default_str();
  cmd->add_option("--warmup", o->warmup, "--benchmark: untimed runs first")
      ->check(CLI::Range(0, 1000000))
      ->needs(benchmark)
      ->capture_default_str();
  return [o, model] {
    o->model_given = model->count() > 0;
    return run_score(*o);
  };
}

}  // namespace musiq::cli
