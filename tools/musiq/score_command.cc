// musiq score: score images, files or whole collections, with one or several models.
#include <algorithm>
#include <atomic>
#include <iostream>
#include <limits>
#include <mutex>
#include <sstream>

#include "engine/musiq.h"
#include "engine/pipeline.h"
#include "tools/musiq/bench.h"
#include "tools/musiq/commands.h"
#include "tools/musiq/input_items.h"
#include "tools/musiq/inputs.h"
#include "tools/musiq/progress.h"
#include "tools/musiq/records.h"
#include "tools/musiq/stop_signals.h"
#include "tools/musiq/tar_reader.h"
#include "tools/musiq/precision_option.h"
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
  std::string precision = "fp32";
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

DecodeOptions decode_options(const ScoreOptions& o) {
  DecodeOptions decode;
  decode.max_pixels = o.max_pixels;
  decode.max_tokens = o.max_tokens;
  decode.target = o.target;
  return decode;
}

std::unique_ptr<Pipeline> open_pipeline(const ScoreOptions& o) {
  PipelineParams params;
  params.models = split_models(o.models);
  if (!o.weights.empty() && params.models.size() > 1)
    throw Error("--weights names one file: use it with a single --model");
  params.weights = o.weights;
  params.check_variant = o.model_given;
  params.device = parse_device_kind(o.device);
  params.precision = parse_precision(o.precision);
  params.decode = decode_options(o);
  params.threads = o.threads;
  params.batch_images = o.batch;
  params.strict = o.strict;
  if (!o.quiet) params.on_note = [](const std::string& note) { std::cerr << "musiq: " << note << "\n"; };
  return Pipeline::open(params);
}

// One image's record from one model.
Record record_of(const InputItem& item, const Pipeline& pipeline, size_t model,
                 const Outcome& o, const ScoreOptions& options) {
  Record r;
  r.path = item.path;  // a member's record names its shard apart
  r.member = item.member;
  r.model = pipeline.label(model);
  if (!o.ok()) {
    r.error = o.error;
    return r;
  }
  const ScoreResult& s = o.result;
  r.score = s.score;
  r.device = o.device;
  r.precision = precision_name(pipeline.precision());
  r.gpu_available = pipeline.gpu_available();
  r.width = s.width;
  r.height = s.height;
  r.scored_width = options.target.width;
  r.scored_height = options.target.height;
  r.tokens = s.tokens;
  r.ms = s.total_ms();
  r.random_weights = pipeline.model(model).random_weights;
  r.warning = s.warning;
  return r;
}

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
  bench.precision = o.precision;
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
  const std::unique_ptr<Pipeline> pipeline = open_pipeline(o);
  int64_t skipped_members = 0;
  const std::vector<InputItem> all_items = expand_tar_shards(inputs.images, skipped_members);
  if (inputs.skipped_non_images && !o.quiet)
    std::cerr << "musiq: skipped " << inputs.skipped_non_images
              << " files without an image extension\n";
  if (skipped_members && !o.quiet)
    std::cerr << "musiq: skipped " << skipped_members
              << " tar members without an image extension\n";
  const std::unique_ptr<RecordSink> sink = RecordSink::open(format, o.output, o.resume, o.overwrite);

  // Images with at least one model still to run (all of them unless resuming).
  auto done_already = [&](const InputItem& item, size_t model) {
    return sink->done().count({item_identity(item.path, item.member), pipeline->label(model)}) > 0;
  };
  std::vector<InputItem> todo;
  for (const InputItem& item : all_items)
    for (size_t m = 0; m < pipeline->model_count(); ++m)
      if (!done_already(item, m)) {
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
  Progress progress(static_cast<int64_t>(todo.size()), !o.quiet);
  Pipeline::Run run;
  std::vector<size_t> tar_turn(todo.size());  // the order tar members are read in
  for (size_t i = 0, turns = 0; i < todo.size(); ++i) {
    run.names.push_back(todo[i].name());
    if (todo[i].in_tar()) tar_turn[i] = turns++;
  }
  TarMemberReader tar_reader;
  run.load = [&](size_t i) -> PreparedImagePtr {
    const InputItem& item = todo[i];
    if (!item.error.empty()) throw Error(item.error);
    if (!item.in_tar()) return pipeline->prepare(ImageSource::file(item.path));
    const std::vector<uint8_t> bytes = tar_reader.read(tar_turn[i], item);
    return pipeline->prepare(ImageSource::encoded_bytes(item.name(), bytes.data(), bytes.size()));
  };
  run.skip = [&](size_t i, size_t model) { return done_already(todo[i], model); };
  run.stop = [&] { return signals.stop_requested(); };
  run.deliver = [&](size_t i, const std::vector<std::optional<Outcome>>& outcomes) {
    std::string error;  // the image's first
    {
      std::lock_guard<std::timed_mutex> lock(output);
      for (size_t m = 0; m < outcomes.size(); ++m) {
        if (!outcomes[m]) continue;
        sink->write(record_of(todo[i], *pipeline, m, *outcomes[m], o));
        if (error.empty()) error = outcomes[m]->error;
      }
    }
    if (!error.empty()) {
      ++failed;
      if (!o.quiet) progress.note("musiq: " + error);
    }
    progress.update(++done, failed);
  };
  pipeline->run(run);
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
  add_precision_option(*cmd, o->precision);
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
