// The whole forward pass after decoding, as `musiq score` runs it: make_tokens
// (normalize, Gaussian resizes, patches; on the CPU for both devices) + the model's
// score(), on synthetic images of four sizes (uniform random pixels, fixed seed: the work
// depends only on the image size) with a full-size random model (tools/musiq-make-test-model,
// fixed seed) made once. Rows: e2e/ (make_tokens + CpuModel::score), make_tokens/ and
// score/ alone; in CUDA builds with a usable device also gpu/e2e/ and gpu/score/ (GpuModel,
// whose score() returns after the device is done). Time in ms per image, FLOP/s from
// model_flops() below, `tokens` = the sequence length L the model ran on.
#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <random>
#include <string>

#include "base/error.h"
#include "bench/photos.h"
#include "engine/device.h"
#include "engine/model/cpu_model.h"
#include "engine/model/model_weights.h"
#include "engine/preprocess/preprocess.h"
#include "weights/weights.h"
#ifdef MUSIQ_HAS_CUDA
#include "engine/model/gpu_model.h"
#endif

namespace musiq {
namespace {

constexpr uint32_t kSeed = 20261125;

// Nominal FLOPs of one forward pass (spec section 6), from the config; a multiply-add is
// 2 FLOP and only the matrix products count (convolutions, Dense layers, attention's
// two products), not norms, activations or softmax. With n real tokens (padding dropped),
// L = n + 1 (CLS), d = hidden, m = mlp_dim, P = 8*8 positions of the pooled stem map,
// W = 64 stem width, 4W = 256 bottleneck output:
//   stem per token      = 16*16*(7*7*3)*W               conv_root
//                       + P*W*4W + P*W*W + P*(3*3*W)*W + P*W*4W
//                                                       conv_proj, conv1, conv2, conv3
//                                                       = 7.13 M multiply-adds
//   embedding per token = P*4W*d                        = 6.29 M
//   per block, per row  = d*3d + d*d + 2*d*m            = 1.47 M  (qkv, out, MLP)
//   attention per block = 2*L*L*d                       (QK^T and PV)
//   FLOP = 2 * ( n*(stem + embedding) + layers*(L*block + 2*L*L*d) ) + 2*d*classes (head)
// 1024x768: n = 918, L = 919 -> 80.7 GFLOP; 4032x3024: L = 12121 -> 3.99 TFLOP.
// The engine's last block computes only the CLS row after the QKV product, so it runs
// about 4% fewer FLOPs than this at 1024x768: the GFLOP/s reported are nominal.
double model_flops(const ModelConfig& c, int64_t tokens) {
  const double n = double(tokens), len = n + 1, d = c.hidden_size, m = c.mlp_dim;
  const double width = kStemWidth, out = kStemOutWidth, pooled = 8 * 8;
  const double stem = 16 * 16 * (7 * 7 * 3) * width + pooled * width * out +
                      pooled * width * width + pooled * (3 * 3 * width) * width +
                      pooled * width * out;
  const double embedding = pooled * out * d;
  const double block = d * 3 * d + d * d + 2 * d * m;
  const double attention = 2 * len * len * d;
  return 2 * (n * (stem + embedding) + c.num_layers * (len * block + attention) +
              d * c.num_classes);
}

using musiq::bench::kPhotos;
using musiq::bench::Photo;

Image random_image(int width, int height) {
  std::mt19937 rng(kSeed);
  std::uniform_int_distribution<int> dist(0, 255);
  Image image;
  image.width = width;
  image.height = height;
  image.rgb.resize(size_t(width) * height * 3);
  for (uint8_t& v : image.rgb) v = static_cast<uint8_t>(dist(rng));
  return image;
}

// The full-size random model, written once into a temporary directory by the Python
// tool, loaded, and the directory removed. Throws musiq::Error on failure.
const ModelWeights& bench_weights() {
  static const ModelWeights weights = [] {
    namespace fs = std::filesystem;
    std::string dir = (fs::temp_directory_path() / "musiq_bench_XXXXXX").string();
    if (!mkdtemp(dir.data())) throw Error("cannot create a temporary directory " + dir);
    const std::string path = dir + "/random_full.h5";
    const std::string command = std::string("'") + MUSIQ_PYTHON + "' '" + MUSIQ_SOURCE_DIR +
                                "/tools/musiq-make-test-model' '" + path + "' --seed " +
                                std::to_string(kSeed) + " --size full --num-classes 1 1>&2";
    const int status = std::system(command.c_str());
    std::unique_ptr<ModelWeights> loaded;
    if (status == 0) loaded = std::make_unique<ModelWeights>(prepare_model_weights(load_weights(path)));
    fs::remove_all(dir);
    if (!loaded) throw Error("musiq-make-test-model failed: " + command);
    return *loaded;
  }();
  return weights;
}

// One model per device, made on first use.
template <typename Model>
Model& bench_model() {
  static Model model(bench_weights());
  return model;
}

enum class Part { kEndToEnd, kMakeTokens, kScore };

template <typename Model>
void run_row(benchmark::State& state, const Photo& p, Part part) {
  const ModelConfig config;
  Model* model = nullptr;
  try {
    if (part != Part::kMakeTokens) model = &bench_model<Model>();
  } catch (const Error& e) {
    state.SkipWithError(e.what());
    return;
  }
  const Image image = random_image(p.width, p.height);
  const Tokens prepared = make_tokens(image, config);
  for (auto _ : state) {
    switch (part) {
      case Part::kEndToEnd: {
        const Tokens tokens = make_tokens(image, config);
        benchmark::DoNotOptimize(model->score(tokens));
        break;
      }
      case Part::kMakeTokens: {
        const Tokens tokens = make_tokens(image, config);
        benchmark::DoNotOptimize(tokens.patches.data());
        break;
      }
      case Part::kScore:
        benchmark::DoNotOptimize(model->score(prepared));
        break;
    }
  }
  state.counters["tokens"] = double(prepared.count() + 1);
  if (part != Part::kMakeTokens)
    state.counters["FLOP/s"] =
        benchmark::Counter(model_flops(config, prepared.count()),
                           benchmark::Counter::kIsIterationInvariantRate);
}

// iterations > 0 fixes the count (run_row then runs once per row, building its image
// once); 0 lets Google Benchmark choose it.
template <typename Model>
void add_rows(const std::string& device_prefix, std::initializer_list<Part> parts,
              int iterations = 0) {
  for (Part part : parts) {
    const char* name = part == Part::kEndToEnd ? "e2e/" : part == Part::kScore ? "score/"
                                                                                : "make_tokens/";
    for (const Photo& p : kPhotos) {
      auto* row = benchmark::RegisterBenchmark(
                      (device_prefix + name + p.name).c_str(),
                      [p, part](benchmark::State& s) { run_row<Model>(s, p, part); })
                      ->UseRealTime()
                      ->Unit(benchmark::kMillisecond);
      if (iterations > 0) row->Iterations(iterations);
    }
  }
}

[[maybe_unused]] const bool registered = [] {
  add_rows<CpuModel>("", {Part::kEndToEnd, Part::kMakeTokens, Part::kScore});
#ifdef MUSIQ_HAS_CUDA
  // Bounded for tools/gpu-check's time budget: 10 images a row.
  if (probe_gpu().usable) add_rows<GpuModel>("gpu/", {Part::kEndToEnd, Part::kScore}, 10);
#endif
  return true;
}();

}  // namespace
}  // namespace musiq
