// Every op of cpu/ops.h at the shapes MUSIQ runs it on, one Google Benchmark row each:
//  - preprocessing (normalize, Gaussian resize, patch extraction) for four photo sizes:
//    224x224, 512x384, 1024x768 and a 12-megapixel phone photo, 4032x3024;
//  - the patch stem on one chunk of 64 tokens, as engine/cpu_model.cc runs it
//    (kStemChunk), one row per layer under the names cpu_model.cc uses;
//  - the encoder at each photo's sequence length L (real tokens of every scale, padding
//    dropped as the engine does, CLS included), plus L = 50, the 224 scale alone
//    (49 + 1), and the rows of the last block, where only the CLS query is computed.
// Each row has FLOP/s and bytes/s counters (kIsRate), to read against the peak rows:
// peak/sgemm (OpenBLAS on a large square GEMM, the best FLOP/s this build can get) and
// peak/triad (STREAM triad, the memory bandwidth).
// FLOPs count multiplies and adds separately (a GEMM is 2*m*k*n); non-GEMM ops count
// their arithmetic per element as stated at each row. Bytes are the compulsory traffic:
// each input read once, each output written once, not what the implementation moves
// (im2col columns, attention score blocks, the resize's intermediate).
// Real time throughout: the ops run OpenMP and OpenBLAS threads.
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "bench/photos.h"
#include "cpu/ops.h"
#include "engine/config.h"
#include "engine/preprocess.h"
#include "engine/resize_plan.h"

namespace musiq {
namespace {

constexpr uint32_t kSeed = 20261125;
constexpr int kStemChunk = 64;  // = kStemChunk in engine/cpu_model.cc
constexpr int kPatch = 32, kRootOut = 16, kPoolOut = 8;

using musiq::bench::kPhotos;
using musiq::bench::Photo;

std::vector<float> random_floats(int64_t n, float stddev = 1.0f, uint32_t seed = kSeed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, stddev);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

std::vector<uint8_t> random_bytes(int64_t n) {
  std::mt19937 rng(kSeed);
  std::uniform_int_distribution<int> dist(0, 255);
  std::vector<uint8_t> v(n);
  for (uint8_t& x : v) x = static_cast<uint8_t>(dist(rng));
  return v;
}

// Sequence length the engine runs for a photo: real tokens of every scale, plus CLS.
int64_t sequence_length(int height, int width, const ModelConfig& c) {
  int64_t n = 0;
  for (int side : c.longer_side_lengths) {
    const auto [rh, rw] = resized_shape(height, width, side);
    const int64_t per_side = (side + c.patch_size - 1) / c.patch_size;
    n += scale_geometry(rh, rw, c.patch_size, per_side * per_side).tokens;
  }
  n += scale_geometry(height, width, c.patch_size, c.max_seq_len_from_original_res).tokens;
  return n + 1;
}

// Registers a row. `setup` builds the inputs (untimed) and returns the op to time.
template <typename Setup>
void add_row(const std::string& name, double flops, double bytes, Setup setup) {
  benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& state) {
    auto op = setup();
    for (auto _ : state) {
      op();
      benchmark::ClobberMemory();
    }
    if (flops > 0)
      state.counters["FLOP/s"] =
          benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate);
    state.counters["bytes/s"] =
        benchmark::Counter(bytes, benchmark::Counter::kIsIterationInvariantRate);
  })->UseRealTime()->Unit(benchmark::kMicrosecond);
}

// ---- Peaks -----------------------------------------------------------------------

void add_peak_rows() {
  constexpr int n = 2048;
  add_row("peak/sgemm_openblas/2048", 2.0 * n * n * n, 3.0 * n * n * 4, [] {
    return [a = random_floats(int64_t{n} * n), b = random_floats(int64_t{n} * n, 1.0f, 7),
            c = std::vector<float>(int64_t{n} * n)]() mutable {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a.data(), n,
                  b.data(), n, 0.0f, c.data(), n);
    };
  });
  // a = b + s * c over 64 MiB arrays (far past the L3): 2 FLOP and 12 bytes per element.
  constexpr int64_t count = int64_t{16} << 20;
  add_row("peak/triad/16Mi_floats", 2.0 * count, 12.0 * count, [=] {
    return [=, a = std::vector<float>(count), b = random_floats(count),
            c = random_floats(count, 1.0f, 7)]() mutable {
      float* pa = a.data();
      const float *pb = b.data(), *pc = c.data();
#pragma omp parallel for schedule(static)
      for (int64_t i = 0; i < count; ++i) pa[i] = pb[i] + 0.5f * pc[i];
    };
  });
}

// ---- Preprocessing, per photo ------------------------------------------------------

void add_preprocess_rows(const Photo& p) {
  const int h = p.height, w = p.width;
  const std::string tag = p.name;
  const int64_t count = int64_t{h} * w * 3;
  // x / 255 * 2 - 1: 3 FLOP; 1 byte in, 4 out.
  add_row("normalize_image/" + tag, 3.0 * count, 5.0 * count, [=] {
    return [=, rgb = random_bytes(count), out = std::vector<float>(count)]() mutable {
      cpu::normalize_image(rgb.data(), count, out.data());
    };
  });

  const ModelConfig config;
  for (int side : config.longer_side_lengths) {
    const int rh = resized_shape(h, w, side).first, rw = resized_shape(h, w, side).second;
    const ResizePlan rows = gaussian_resize_plan(h, rh), cols = gaussian_resize_plan(w, rw);
    // A multiply and an add per tap: rows pass over [rh, w, 3], columns over [rh, rw, 3].
    const double flops = 2.0 * rows.span * rh * w * 3 + 2.0 * cols.span * rh * rw * 3;
    const double bytes = 4.0 * (count + int64_t{rh} * rw * 3);
    add_row("gaussian_resize/" + tag + "->" + std::to_string(rw) + "x" + std::to_string(rh),
            flops, bytes, [=] {
              return [=, in = random_floats(count), tmp = std::vector<float>(int64_t{rh} * w * 3),
                      out = std::vector<float>(int64_t{rh} * rw * 3)]() mutable {
                cpu::gaussian_resize(in.data(), h, w, 3, rows, cols, tmp.data(), out.data());
              };
            });
  }

  // Patches of each scale's image (resized scales, then native): a copy, no FLOPs.
  std::vector<std::pair<std::string, std::pair<int, int>>> scales;
  for (int side : config.longer_side_lengths)
    scales.push_back({"scale" + std::to_string(side), resized_shape(h, w, side)});
  scales.push_back({"native", {h, w}});
  for (const auto& [scale, size] : scales) {
    const int sh = size.first, sw = size.second;
    const ScaleGeometry g = scale_geometry(sh, sw, kPatch, -1);
    const int64_t out_count = int64_t{g.count_h} * g.count_w * kPatch * kPatch * 3;
    const double bytes = 4.0 * (int64_t{sh} * sw * 3 + out_count);
    add_row("extract_patches/" + tag + "/" + scale, 0, bytes, [=] {
      return [=, img = random_floats(int64_t{sh} * sw * 3),
              out = std::vector<float>(out_count)]() mutable {
        cpu::extract_patches(img.data(), sh, sw, kPatch, g.count_h, g.count_w, g.pad_top,
                             g.pad_left, out.data());
      };
    });
  }
}

// ---- Patch stem, one chunk of 64 tokens ---------------------------------------------

void add_conv_row(const std::string& layer, int in_hw, int cin, int k, int cout, int stride,
                  int pad, int out_hw) {
  const int n = kStemChunk;
  const int64_t in_count = int64_t{n} * in_hw * in_hw * cin;
  const int64_t out_count = int64_t{n} * out_hw * out_hw * cout;
  const int64_t kernel_count = int64_t{k} * k * cin * cout;
  const int64_t columns = int64_t{n} * out_hw * out_hw * k * k * cin;
  const double flops = 2.0 * out_count * k * k * cin;
  const double bytes = 4.0 * (in_count + kernel_count + out_count);
  add_row("stem/" + layer + "/chunk64", flops, bytes, [=] {
    return [=, in = random_floats(in_count),
            kernel = random_floats(kernel_count, 1.0f / std::sqrt(float(k * k * cin)), 7),
            cols = std::vector<float>(k == 1 ? 0 : columns),
            out = std::vector<float>(out_count)]() mutable {
      cpu::conv2d(in.data(), n, in_hw, in_hw, cin, kernel.data(), k, k, cout, stride, pad, pad,
                  out_hw, out_hw, k == 1 ? nullptr : cols.data(), out.data());
    };
  });
}

void add_group_norm_row(const std::string& layer, int hw, int c, float eps, bool relu) {
  const int n = kStemChunk;
  const int64_t count = int64_t{n} * hw * c;
  // Statistics: add, multiply, add; normalize: subtract, multiply, multiply, add.
  add_row("stem/" + layer + "/chunk64", 7.0 * count, 8.0 * count, [=] {
    return [=, x = random_floats(count), scale = random_floats(c, 0.1f, 7),
            bias = random_floats(c, 0.1f, 8)]() mutable {
      cpu::group_norm(x.data(), n, hw, c, kStemGroups, scale.data(), bias.data(), eps, relu);
    };
  });
}

void add_linear_row(const std::string& name, int64_t m, int k, int n, cpu::Epilogue epilogue) {
  const bool residual = epilogue == cpu::Epilogue::kBiasResidual;
  const double flops = 2.0 * m * k * n + double(m) * n;  // GEMM + bias
  const double bytes = 4.0 * (m * k + int64_t{k} * n + n + m * n * (residual ? 2 : 1));
  add_row(name, flops, bytes, [=] {
    return [=, a = random_floats(m * k), b = random_floats(int64_t{k} * n,
                                                           1.0f / std::sqrt(float(k)), 7),
            bias = random_floats(n, 0.02f, 8), out = random_floats(m * n, 1.0f, 9)]() mutable {
      cpu::linear(a.data(), m, k, b.data(), n, bias.data(), epilogue, out.data());
    };
  });
}

void add_stem_rows() {
  const int n = kStemChunk;
  add_conv_row("conv_root_7x7s2", kPatch, 3, 7, kStemWidth, 2, 2, kRootOut);
  add_group_norm_row("gn_root_relu", kRootOut * kRootOut, kStemWidth, kRootGroupNormEps, true);
  {
    const int64_t in_count = int64_t{n} * kRootOut * kRootOut * kStemWidth;
    const int64_t out_count = int64_t{n} * kPoolOut * kPoolOut * kStemWidth;
    // 9 comparisons per output.
    add_row("stem/max_pool_3x3s2/chunk64", 9.0 * out_count, 4.0 * (in_count + out_count), [=] {
      return [=, in = random_floats(in_count), out = std::vector<float>(out_count)]() mutable {
        cpu::max_pool_3x3_s2(in.data(), n, kRootOut, kRootOut, kStemWidth, kPoolOut, kPoolOut,
                             out.data());
      };
    });
  }
  const int hw = kPoolOut * kPoolOut;
  add_conv_row("conv_proj_1x1", kPoolOut, kStemWidth, 1, kStemOutWidth, 1, 0, kPoolOut);
  add_group_norm_row("gn_proj", hw, kStemOutWidth, kUnitGroupNormEps, false);
  add_conv_row("conv1_1x1", kPoolOut, kStemWidth, 1, kStemWidth, 1, 0, kPoolOut);
  add_group_norm_row("gn1_relu", hw, kStemWidth, kUnitGroupNormEps, true);
  add_conv_row("conv2_3x3", kPoolOut, kStemWidth, 3, kStemWidth, 1, 1, kPoolOut);
  add_group_norm_row("gn2_relu", hw, kStemWidth, kUnitGroupNormEps, true);
  add_conv_row("conv3_1x1", kPoolOut, kStemWidth, 1, kStemOutWidth, 1, 0, kPoolOut);
  add_group_norm_row("gn3", hw, kStemOutWidth, kUnitGroupNormEps, false);
  {
    const int64_t count = int64_t{n} * hw * kStemOutWidth;
    // Add and max: 2 FLOP; read two, write one.
    add_row("stem/add_relu/chunk64", 2.0 * count, 12.0 * count, [=] {
      return [=, x = random_floats(count), r = random_floats(count, 1.0f, 7)]() mutable {
        cpu::add_relu(x.data(), r.data(), count);
      };
    });
  }
  const ModelConfig config;
  add_linear_row("stem/embedding/chunk64", n, hw * kStemOutWidth, config.hidden_size,
                 cpu::Epilogue::kBias);
}

// ---- Encoder, per sequence length ---------------------------------------------------

void add_attention_row(const std::string& name, int64_t len, int64_t q_rows) {
  const ModelConfig c;
  const int hidden = c.hidden_size;
  // QK^T and PV GEMMs; softmax not counted. Reads q rows, all of K and V; writes out.
  const double flops = 4.0 * q_rows * len * hidden;
  const double bytes = 4.0 * (2 * q_rows * hidden + 2 * len * hidden);
  add_row(name, flops, bytes, [=] {
    return [=, qkv = random_floats(len * 3 * hidden),
            out = std::vector<float>(q_rows * hidden)]() mutable {
      cpu::attention(qkv.data(), len, c.num_heads, c.head_dim(), q_rows, out.data());
    };
  });
}

void add_encoder_rows(const std::string& tag, int64_t len) {
  const ModelConfig c;
  const int h = c.hidden_size;
  const std::string suffix = "/" + tag + "/L" + std::to_string(len);
  // Mean and variance: add, multiply, add; normalize: subtract, multiply, multiply, add.
  add_row("encoder/layer_norm" + suffix, 7.0 * len * h, 8.0 * len * h, [=] {
    return [=, x = random_floats(len * h), scale = random_floats(h, 0.1f, 7),
            bias = random_floats(h, 0.1f, 8), out = std::vector<float>(len * h)]() mutable {
      cpu::layer_norm(x.data(), len, h, scale.data(), bias.data(), kLayerNormEps, out.data());
    };
  });
  {
    const int64_t rows = len - 1;  // every token but CLS
    add_row("encoder/add_embeddings" + suffix, 2.0 * rows * h, 4.0 * (2 * rows * h + 2 * rows),
            [=] {
              std::vector<int32_t> spatial(rows), scale_id(rows);
              for (int64_t r = 0; r < rows; ++r) {
                spatial[r] = static_cast<int32_t>(r % (c.hse_grid_size * c.hse_grid_size));
                scale_id[r] = static_cast<int32_t>(r % c.num_scales());
              }
              return [=, x = random_floats(rows * h),
                      pos = random_floats(int64_t{c.hse_grid_size} * c.hse_grid_size * h, 0.02f, 7),
                      scl = random_floats(int64_t{c.num_scales()} * h, 0.02f, 8)]() mutable {
                cpu::add_embeddings(x.data(), rows, h, spatial.data(), scale_id.data(),
                                    pos.data(), scl.data());
              };
            });
  }
  add_linear_row("encoder/qkv" + suffix, len, h, 3 * h, cpu::Epilogue::kBias);
  add_attention_row("encoder/attention" + suffix, len, len);
  add_linear_row("encoder/out_proj" + suffix, len, h, h, cpu::Epilogue::kBiasResidual);
  add_linear_row("encoder/mlp0_gelu" + suffix, len, h, c.mlp_dim, cpu::Epilogue::kBiasGelu);
  add_linear_row("encoder/mlp1" + suffix, len, c.mlp_dim, h, cpu::Epilogue::kBiasResidual);
  // The last block computes the CLS query only, against all keys.
  add_attention_row("encoder/attention_cls_only" + suffix, len, 1);
}

void add_cls_rows() {
  const ModelConfig c;
  const int h = c.hidden_size;
  add_linear_row("encoder/out_proj/cls_row", 1, h, h, cpu::Epilogue::kBiasResidual);
  add_linear_row("encoder/mlp0_gelu/cls_row", 1, h, c.mlp_dim, cpu::Epilogue::kBiasGelu);
  add_linear_row("encoder/mlp1/cls_row", 1, c.mlp_dim, h, cpu::Epilogue::kBiasResidual);
  for (int classes : {1, 10}) {
    const std::string tag = "/classes" + std::to_string(classes);
    add_linear_row("head/linear" + tag, 1, h, classes, cpu::Epilogue::kBias);
    // Softmax and weighted mean: about 5 FLOP per class (exp counted as one).
    add_row("head/head_score" + tag, 5.0 * classes, 4.0 * classes, [=] {
      return [=, logits = random_floats(classes)]() mutable {
        benchmark::DoNotOptimize(cpu::head_score(logits.data(), classes));
      };
    });
  }
}

[[maybe_unused]] const bool registered = [] {
  add_peak_rows();
  for (const Photo& p : kPhotos) add_preprocess_rows(p);
  add_stem_rows();
  const ModelConfig config;
  add_encoder_rows("scale224", 49 + 1);
  for (const Photo& p : kPhotos)
    add_encoder_rows(p.name, sequence_length(p.height, p.width, config));
  add_cls_rows();
  return true;
}();

}  // namespace
}  // namespace musiq
