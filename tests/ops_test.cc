// One test per op of cpu/ops.h, run on every device built (the CPU; in CUDA builds the
// GPU too, skipped with the reason when no device is present), each against the plain
// double-precision formula at the shapes MUSIQ runs it (bench/op_rows.h) up to a cost
// bound, with a tolerance per device. Inputs are seeded random values (never zeros),
// weights scaled by 1/sqrt(fan-in) as trained weights are, so outputs are O(1).
//
// Tolerances (abs + rel * |want|): the CPU's were checked here (the worst error, printed per
// case, uses under half of each bound); the GPU's are 4 times as wide, unmeasured until a
// GPU runs this test. The
// preprocessing ops (normalize, resize, patches) are bit-identical to TensorFlow
// (tf_parity_test.cc) and the GPU to the CPU (tests/gpu/): no tolerance to state there.
//
// The products (Dense layers, convolutions) also run at bf16 and tf32 (docs/precision.md)
// on each device, against the same formula on the inputs rounded as the precision rounds
// them: products of rounded values are exact in double, and the devices sum them in
// float32 as in fp32, so the fp32 tolerance holds. (Attention at bf16 and tf32 rounds its
// probabilities too, where a last-bit difference in a logit can move a rounding by a whole
// step: tests/gpu/attention_gpu_test.cc compares the two devices with that bound.)
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <deque>
#include <functional>
#include <ostream>
#include <string>
#include <variant>
#include <vector>

#include "base/precision.h"
#include "bench/op_rows.h"
#include "cpu/gemm.h"
#include "cpu/ops.h"
#include "tests/test_util.h"
#include "weights/config.h"
#ifdef MUSIQ_HAS_CUDA
#include "kernels/device_array.h"
#include "kernels/ops.cuh"
#endif

namespace musiq {
namespace {

// Rows whose double reference costs more are left out (12,000-token attention, 4032x3024
// convolutions): CI runs the reference too, on two cores.
constexpr double kMostFlops = 2e9;

enum class Device { kCpu, kCuda };

struct Tolerance {
  double abs, rel;
};

// Host vectors in and out; the GPU side uploads, runs on one stream, downloads.
class Runner {
 public:
  explicit Runner(Device device) : device_(device) {}
  Device device() const { return device_; }

  // Runs `cpu` on the host buffers, or `gpu` on device copies of them (outputs copied
  // back into the same host vectors). Buffers: float vectors in `f`, int32 in `i`.
  void run(std::vector<std::vector<float>*> f, std::vector<std::vector<int32_t>*> i,
           const std::function<void(const std::vector<float*>&, const std::vector<int32_t*>&)>& op);

 private:
  Device device_;
};

#ifdef MUSIQ_HAS_CUDA
// One stream and GEMM context for the whole test binary.
struct CudaContext {
  cudaStream_t stream = nullptr;
  cuda::GemmContext gemm{nullptr, 0};
  CudaContext() { CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking)); }
};
CudaContext& cuda_context() {
  static CudaContext context;
  return context;
}
bool cuda_usable(std::string* reason) {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess || count == 0) {
    cudaGetLastError();
    *reason = std::string("no usable CUDA device (") +
              (status != cudaSuccess ? cudaGetErrorString(status) : "none present") + ")";
    return false;
  }
  return true;
}
#endif

void Runner::run(std::vector<std::vector<float>*> f, std::vector<std::vector<int32_t>*> i,
                 const std::function<void(const std::vector<float*>&,
                                          const std::vector<int32_t*>&)>& op) {
  std::vector<float*> fp;
  std::vector<int32_t*> ip;
  if (device_ == Device::kCpu) {
    for (auto* v : f) fp.push_back(v->data());
    for (auto* v : i) ip.push_back(v->data());
    op(fp, ip);
    return;
  }
#ifdef MUSIQ_HAS_CUDA
  std::deque<cuda::DeviceArray<float>> df;  // deque: the arrays never move
  std::deque<cuda::DeviceArray<int32_t>> di;
  const cudaStream_t stream = cuda_context().stream;  // the ops run there too
  for (auto* v : f) {
    df.emplace_back().upload(*v, "a test buffer", stream);
    fp.push_back(df.back().get());
  }
  for (auto* v : i) {
    di.emplace_back().upload(*v, "a test buffer", stream);
    ip.push_back(di.back().get());
  }
  op(fp, ip);
  CUDA_CHECK(cudaDeviceSynchronize());
  for (size_t k = 0; k < f.size(); ++k)
    if (!f[k]->empty())
      CUDA_CHECK(cudaMemcpy(f[k]->data(), df[k].get(), f[k]->size() * sizeof(float),
                            cudaMemcpyDeviceToHost));
#endif
}


std::vector<float> scaled(int64_t n, double scale, uint32_t seed) {
  std::vector<float> v = bench::random_floats(n, 1.0f, seed);
  for (float& x : v) x = static_cast<float>(x * scale);
  return v;
}

double gelu(double x) {
  return 0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
}

// The worst error, printed, then the check.
::testing::AssertionResult close_to(const std::vector<float>& got, const std::vector<double>& want,
                                    Tolerance t) {
  std::vector<float> want_f(want.begin(), want.end());
  double worst = 0;
  for (size_t k = 0; k < got.size() && k < want.size(); ++k)
    worst = std::max(worst, std::abs(got[k] - want[k]) / (t.abs + t.rel * std::abs(want[k])));
  std::printf("  worst error: %.3g of the tolerance\n", worst);
  // all_close compares against the float-rounded reference; allow that half ulp too.
  return test::all_close(got, want_f, t.abs + 1e-7, t.rel + 6e-8);
}

// `v` rounded as products' inputs at precision `p`.
std::vector<float> rounded(std::vector<float> v, Precision p) {
  for (float& x : v) x = round_for_products(p, x);
  return v;
}

#ifdef MUSIQ_HAS_CUDA
// A device copy of `count` floats at `values`, rounded to bfloat16 (the model's kernels are,
// once, at upload).
cuda::DeviceArray<__nv_bfloat16> bf16_copy(const float* values, int64_t count) {
  cuda::DeviceArray<__nv_bfloat16> copy;
  copy.allocate(size_t(count), "a bfloat16 test buffer");
  cuda::round_to_bf16(values, count, copy.get(), cuda_context().stream);
  return copy;
}
#endif

// Per op: run on `r` at `precision`, compare with the double formula. Each returns the
// assertion result.
struct OpCheck {
  Runner& r;
  Precision precision;

  // The CPU's bound (measured: the worst case uses under half of it), times 4 on the GPU
  // for its other summation orders (cuBLAS, tiled attention); unmeasured there.
  Tolerance tol(Tolerance cpu) const {
    return r.device() == Device::kCpu ? cpu : Tolerance{4 * cpu.abs, 4 * cpu.rel};
  }

  ::testing::AssertionResult operator()(const bench::LinearCall& c) const {
    const auto a = scaled(c.m * c.k, 1.0, 1), b = scaled(int64_t{c.k} * c.n, 1 / std::sqrt(c.k), 2);
    auto bias = scaled(c.n, 0.1, 3), out = scaled(c.m * c.n, 1.0, 4);
    const auto ar = rounded(a, precision), br = rounded(b, precision);
    std::vector<double> want(out.size());
    for (int64_t i = 0; i < c.m; ++i)
      for (int j = 0; j < c.n; ++j) {
        double acc = bias[j];
        for (int k = 0; k < c.k; ++k) acc += double(ar[i * c.k + k]) * br[int64_t{k} * c.n + j];
        const size_t o = size_t(i) * c.n + j;
        want[o] = c.epilogue == Epilogue::kBiasGelu       ? gelu(acc)
                  : c.epilogue == Epilogue::kBiasResidual ? acc + out[o]
                                                               : acc;
      }
    // The kernel as a model holds it at this precision: rounded (the op rounds `a` itself).
    auto av = a, bv = precision == Precision::kFp32 ? b : br;
#ifdef MUSIQ_HAS_CUDA
    cuda::DeviceArray<__nv_bfloat16> b16, a16;  // outlive run(), which waits for the GPU
#endif
    r.run({&av, &bv, &bias, &out}, {}, [&](const auto& f, const auto&) {
      if (r.device() == Device::kCpu) {
        if (precision == Precision::kFp32)
          return cpu::linear(f[0], c.m, c.k, f[1], c.n, f[2], c.epilogue, f[3]);
        std::vector<float> packed(size_t(cpu::packed_floats(c.k, c.n)));
        cpu::pack_columns(f[1], c.k, c.n, c.n, packed.data());
        return cpu::linear_packed(f[0], c.m, c.k, packed.data(), c.n, f[2], c.epilogue, f[3],
                                  precision);
      }
#ifdef MUSIQ_HAS_CUDA
      if (precision == Precision::kBf16) {
        b16 = bf16_copy(f[1], int64_t{c.k} * c.n);
        a16.allocate(size_t(c.m * c.k), "a bfloat16 test buffer");
        return cuda::linear_bf16(f[0], c.m, c.k, b16.get(), c.n, f[2], c.epilogue, f[3],
                                 a16.get(), &cuda_context().gemm, cuda_context().stream);
      }
      cuda::linear(f[0], c.m, c.k, f[1], c.n, f[2], c.epilogue, f[3], &cuda_context().gemm,
                   cuda_context().stream, precision);
#endif
    });
    return close_to(out, want, tol({5e-6, 2.5e-5}));
  }

  ::testing::AssertionResult operator()(const bench::LayerNormCall& c) const {
    auto x = scaled(c.rows * c.dim, 2.0, 5), scale = scaled(c.dim, 1.0, 6),
         bias = scaled(c.dim, 0.5, 7), out = std::vector<float>(x.size());
    std::vector<double> want(x.size());
    for (int64_t i = 0; i < c.rows; ++i) {
      double mean = 0, var = 0;
      for (int j = 0; j < c.dim; ++j) mean += x[i * c.dim + j] / double(c.dim);
      for (int j = 0; j < c.dim; ++j) var += std::pow(x[i * c.dim + j] - mean, 2) / c.dim;
      for (int j = 0; j < c.dim; ++j)
        want[i * c.dim + j] = (x[i * c.dim + j] - mean) / std::sqrt(var + 1e-6) * scale[j] + bias[j];
    }
    r.run({&x, &scale, &bias, &out}, {}, [&](const auto& f, const auto&) {
      if (r.device() == Device::kCpu) return cpu::layer_norm(f[0], c.rows, c.dim, f[1], f[2], 1e-6f, f[3]);
#ifdef MUSIQ_HAS_CUDA
      cuda::layer_norm(f[0], c.rows, c.dim, f[1], f[2], 1e-6f, f[3], cuda_context().stream);
#endif
    });
    return close_to(out, want, tol({1e-6, 1e-6}));
  }

  ::testing::AssertionResult operator()(const bench::EmbeddingsCall& c) const {
    const ModelConfig config;
    const int64_t positions = int64_t{config.hse_grid_size} * config.hse_grid_size;
    auto x = scaled(c.rows * c.dim, 1.0, 8), pos = scaled(positions * c.dim, 0.02, 9),
         scl = scaled(int64_t{config.num_scales()} * c.dim, 0.02, 10);
    auto spatial = test::random_ints<int32_t>(c.rows, 11, 0, int32_t(positions - 1));
    auto scale_id = test::random_ints<int32_t>(c.rows, 12, 0, config.num_scales() - 1);
    std::vector<double> want(x.size());
    for (int64_t i = 0; i < c.rows; ++i)
      for (int j = 0; j < c.dim; ++j)
        want[i * c.dim + j] = double(x[i * c.dim + j]) + pos[spatial[i] * c.dim + j] +
                              scl[scale_id[i] * c.dim + j];
    r.run({&x, &pos, &scl}, {&spatial, &scale_id}, [&](const auto& f, const auto& n) {
      if (r.device() == Device::kCpu) return cpu::add_embeddings(f[0], c.rows, c.dim, n[0], n[1], f[1], f[2]);
#ifdef MUSIQ_HAS_CUDA
      cuda::add_embeddings(f[0], c.rows, c.dim, n[0], n[1], f[1], f[2], cuda_context().stream);
#endif
    });
    return close_to(x, want, tol({1e-6, 2e-7}));
  }

  ::testing::AssertionResult operator()(const bench::AttentionCall& c) const {
    const ModelConfig config;
    const int heads = config.num_heads, hd = config.head_dim(), hidden = config.hidden_size;
    const bool all = c.q_rows == c.len;
    auto qkv = scaled(c.len * 3 * hidden, 1.0, 13);
    std::vector<float> out(size_t(c.q_rows) * hidden);
    std::vector<double> want(out.size());
    for (int h = 0; h < heads; ++h)
      for (int64_t i = 0; i < c.q_rows; ++i) {
        std::vector<double> s(c.len);
        double max = -1e300, sum = 0;
        for (int64_t j = 0; j < c.len; ++j) {
          double dot = 0;
          for (int d = 0; d < hd; ++d)
            dot += double(qkv[i * 3 * hidden + h * hd + d]) * qkv[j * 3 * hidden + hidden + h * hd + d];
          s[j] = dot / std::sqrt(double(hd));
          max = std::max(max, s[j]);
        }
        for (double& v : s) sum += (v = std::exp(v - max));
        for (int d = 0; d < hd; ++d) {
          double acc = 0;
          for (int64_t j = 0; j < c.len; ++j) acc += s[j] / sum * qkv[j * 3 * hidden + 2 * hidden + h * hd + d];
          want[i * hidden + h * hd + d] = acc;
        }
      }
    const Queries queries = all ? Queries::kAll : Queries::kFirst;
    // The offsets travel as two int32 halves of each int64 (little-endian).
    std::vector<int32_t> starts = {0, 0, int32_t(c.len), int32_t(c.len >> 32)};
#ifdef MUSIQ_HAS_CUDA
    cuda::DeviceArray<float> scratch;  // outlives run(), which waits for the GPU
    if (r.device() != Device::kCpu)
      scratch.allocate(size_t(cuda::attention_scratch_floats(1, heads)), "the attention scratch");
#endif
    r.run({&qkv, &out}, {&starts}, [&](const auto& f, const auto& n) {
      const auto* seq = reinterpret_cast<const int64_t*>(n[0]);
      if (r.device() == Device::kCpu) return cpu::attention(f[0], seq, 1, heads, hd, queries, f[1]);
#ifdef MUSIQ_HAS_CUDA
      cuda::attention(f[0], seq, 1, c.len, heads, hd, queries, scratch.get(), f[1],
                      cuda_context().stream);
#endif
    });
    return close_to(out, want, tol({1e-6, 1e-5}));
  }

  ::testing::AssertionResult operator()(const bench::HeadScoreCall& c) const {
    auto logits = scaled(c.classes, 3.0, 14);
    std::vector<float> score(1);
    double want = logits[0];
    if (c.classes > 1) {
      const double max = *std::max_element(logits.begin(), logits.end());
      double sum = 0, weighted = 0;
      for (int k = 0; k < c.classes; ++k) {
        sum += std::exp(logits[k] - max);
        weighted += std::exp(logits[k] - max) * (k + 1);
      }
      want = weighted / sum;
    }
    r.run({&logits, &score}, {}, [&](const auto& f, const auto&) {
      if (r.device() == Device::kCpu) return void(f[1][0] = cpu::head_score(f[0], c.classes));
#ifdef MUSIQ_HAS_CUDA
      cuda::head_score(f[0], 1, c.classes, f[1], cuda_context().stream);
#endif
    });
    return close_to(score, {want}, tol({1e-6, 1e-6}));
  }

  ::testing::AssertionResult operator()(const bench::GroupNormCall& c) const {
    auto x = scaled(int64_t{c.n} * c.hw * c.c, 2.0, 15), scale = scaled(c.c, 1.0, 16),
         bias = scaled(c.c, 0.5, 17);
    std::vector<double> want(x.size());
    const int size = c.c / kStemGroups;
    for (int img = 0; img < c.n; ++img)
      for (int g = 0; g < kStemGroups; ++g) {
        double mean = 0, var = 0;
        const double count = double(c.hw) * size;
        auto at = [&](int p, int j) { return (int64_t{img} * c.hw + p) * c.c + g * size + j; };
        for (int p = 0; p < c.hw; ++p)
          for (int j = 0; j < size; ++j) mean += x[at(p, j)] / count;
        for (int p = 0; p < c.hw; ++p)
          for (int j = 0; j < size; ++j) var += std::pow(x[at(p, j)] - mean, 2) / count;
        for (int p = 0; p < c.hw; ++p)
          for (int j = 0; j < size; ++j) {
            const double v = (x[at(p, j)] - mean) / std::sqrt(var + c.eps) * scale[g * size + j] +
                             bias[g * size + j];
            want[at(p, j)] = c.relu ? std::max(v, 0.0) : v;
          }
      }
    r.run({&x, &scale, &bias}, {}, [&](const auto& f, const auto&) {
      if (r.device() == Device::kCpu)
        return cpu::group_norm(f[0], c.n, c.hw, c.c, kStemGroups, f[1], f[2], c.eps, c.relu);
#ifdef MUSIQ_HAS_CUDA
      cuda::group_norm(f[0], c.n, c.hw, c.c, kStemGroups, f[1], f[2], c.eps, c.relu,
                       cuda_context().stream);
#endif
    });
    return close_to(x, want, tol({1e-6, 1e-6}));
  }

  ::testing::AssertionResult operator()(const bench::MaxPoolCall& c) const {
    auto in = scaled(int64_t{c.n} * c.in_hw * c.in_hw * c.c, 1.0, 18);
    std::vector<float> out(size_t(c.n) * c.out_hw * c.out_hw * c.c);
    std::vector<double> want(out.size());
    for (int img = 0; img < c.n; ++img)
      for (int oy = 0; oy < c.out_hw; ++oy)
        for (int ox = 0; ox < c.out_hw; ++ox)
          for (int ch = 0; ch < c.c; ++ch) {
            double m = -1e300;
            for (int y = 2 * oy; y < std::min(2 * oy + 3, c.in_hw); ++y)
              for (int x = 2 * ox; x < std::min(2 * ox + 3, c.in_hw); ++x)
                m = std::max(m, double(in[((int64_t{img} * c.in_hw + y) * c.in_hw + x) * c.c + ch]));
            want[((int64_t{img} * c.out_hw + oy) * c.out_hw + ox) * c.c + ch] = m;
          }
    r.run({&in, &out}, {}, [&](const auto& f, const auto&) {
      if (r.device() == Device::kCpu)
        return cpu::max_pool_3x3_s2(f[0], c.n, c.in_hw, c.in_hw, c.c, c.out_hw, c.out_hw, f[1]);
#ifdef MUSIQ_HAS_CUDA
      cuda::max_pool_3x3_s2(f[0], c.n, c.in_hw, c.in_hw, c.c, c.out_hw, c.out_hw, f[1],
                            cuda_context().stream);
#endif
    });
    return close_to(out, want, tol({0, 0}));
  }

  ::testing::AssertionResult operator()(const bench::AddReluCall& c) const {
    auto x = scaled(c.count, 1.0, 19), residual = scaled(c.count, 1.0, 20);
    std::vector<double> want(x.size());
    for (int64_t k = 0; k < c.count; ++k) want[k] = std::max(double(x[k]) + residual[k], 0.0);
    r.run({&x, &residual}, {}, [&](const auto& f, const auto&) {
      if (r.device() == Device::kCpu) return cpu::add_relu(f[0], f[1], c.count);
#ifdef MUSIQ_HAS_CUDA
      cuda::add_relu(f[0], f[1], c.count, cuda_context().stream);
#endif
    });
    return close_to(x, want, tol({0, 6e-8}));  // one rounding of the sum
  }

  ::testing::AssertionResult operator()(const bench::ConvCall& c) const {
    const int fan_in = c.k * c.k * c.cin;
    auto in = scaled(int64_t{c.n} * c.in_hw * c.in_hw * c.cin, 1.0, 21);
    auto kernel = scaled(int64_t{fan_in} * c.cout, 1 / std::sqrt(fan_in), 22);
    const auto in_r = rounded(in, precision);
    if (precision != Precision::kFp32) kernel = rounded(kernel, precision);  // as a model holds it
    std::vector<float> out(size_t(c.n) * c.out_hw * c.out_hw * c.cout);
    std::vector<float> columns(size_t(c.n) * c.out_hw * c.out_hw * fan_in);
    std::vector<double> want(out.size());
    for (int img = 0; img < c.n; ++img)
      for (int oy = 0; oy < c.out_hw; ++oy)
        for (int ox = 0; ox < c.out_hw; ++ox)
          for (int co = 0; co < c.cout; ++co) {
            double acc = 0;
            for (int ky = 0; ky < c.k; ++ky)
              for (int kx = 0; kx < c.k; ++kx) {
                const int y = oy * c.stride - c.pad + ky, x = ox * c.stride - c.pad + kx;
                if (y < 0 || y >= c.in_hw || x < 0 || x >= c.in_hw) continue;
                for (int ci = 0; ci < c.cin; ++ci)
                  acc += double(in_r[((int64_t{img} * c.in_hw + y) * c.in_hw + x) * c.cin + ci]) *
                         kernel[((int64_t{ky} * c.k + kx) * c.cin + ci) * c.cout + co];
              }
            want[((int64_t{img} * c.out_hw + oy) * c.out_hw + ox) * c.cout + co] = acc;
          }
#ifdef MUSIQ_HAS_CUDA
    cuda::DeviceArray<__nv_bfloat16> kernel16, columns16;  // outlive run()
#endif
    r.run({&in, &kernel, &columns, &out}, {}, [&](const auto& f, const auto&) {
      if (r.device() == Device::kCpu) {
        if (precision == Precision::kFp32) return cpu::conv2d(f[0], c.shape(), f[1], f[2], f[3]);
        std::vector<float> packed(size_t(cpu::packed_floats(fan_in, c.cout)));
        cpu::pack_columns(f[1], fan_in, c.cout, c.cout, packed.data());
        return cpu::conv2d_packed(f[0], c.shape(), packed.data(), f[2], f[3], precision);
      }
#ifdef MUSIQ_HAS_CUDA
      if (precision == Precision::kBf16) {
        kernel16 = bf16_copy(f[1], int64_t{fan_in} * c.cout);
        columns16.allocate(columns.size(), "bfloat16 columns");
        return cuda::conv2d_bf16(f[0], c.shape(), kernel16.get(), columns16.get(), f[3],
                                 &cuda_context().gemm, cuda_context().stream);
      }
      cuda::conv2d(f[0], c.shape(), f[1], f[2], f[3], &cuda_context().gemm, cuda_context().stream,
                   precision);
#endif
    });
    return close_to(out, want, tol({5e-6, 2.5e-5}));
  }

  // Preprocessing rows are not made into cases (is_model_op); see the top of this file.
  template <typename Call>
  ::testing::AssertionResult operator()(const Call&) const {
    return ::testing::AssertionFailure() << "no double-precision formula for this op";
  }
};

bool is_model_op(const bench::OpCall& call) {
  return !std::holds_alternative<bench::NormalizeCall>(call) &&
         !std::holds_alternative<bench::ResizeCall>(call) &&
         !std::holds_alternative<bench::PatchesCall>(call);
}

bool is_product(const bench::OpCall& call) {
  return std::holds_alternative<bench::LinearCall>(call) ||
         std::holds_alternative<bench::ConvCall>(call);
}

struct OpCase {
  Device device;
  bench::OpRow row;
  Precision precision;
};

// What gtest and ctest call a case: its device, row and, past fp32, precision.
std::string case_name(const OpCase& c) {
  return (c.device == Device::kCpu ? "cpu " : "cuda ") + c.row.name +
         (c.precision == Precision::kFp32 ? "" : " " + precision_name(c.precision));
}

// How gtest and ctest name a case's parameter (not a dump of its bytes).
void PrintTo(const OpCase& c, std::ostream* out) { *out << case_name(c); }

std::vector<OpCase> op_cases() {
  std::vector<Device> devices = {Device::kCpu};
#ifdef MUSIQ_HAS_CUDA
  devices.push_back(Device::kCuda);
#endif
  std::vector<OpCase> cases;
  for (Device d : devices)
    for (const bench::OpRow& row : bench::musiq_op_rows()) {
      if (!is_model_op(row.call) || row.flops > kMostFlops) continue;
      cases.push_back({d, row, Precision::kFp32});
      if (is_product(row.call))
        for (Precision p : {Precision::kBf16, Precision::kTf32}) cases.push_back({d, row, p});
    }
  return cases;
}

class OpsTest : public ::testing::TestWithParam<OpCase> {};

TEST_P(OpsTest, MatchesDoublePrecisionFormula) {
  const OpCase& c = GetParam();
#ifdef MUSIQ_HAS_CUDA
  std::string reason;
  if (c.device == Device::kCuda && !cuda_usable(&reason)) GTEST_SKIP() << reason;
#endif
  Runner runner(c.device);
  EXPECT_TRUE(std::visit(OpCheck{runner, c.precision}, c.row.call)) << case_name(c);
}

INSTANTIATE_TEST_SUITE_P(
    Rows, OpsTest, ::testing::ValuesIn(op_cases()), [](const auto& info) {
      std::string name = case_name(info.param);
      for (char& ch : name)
        if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
      return name;
    });

}  // namespace
}  // namespace musiq
