// The GPU rows of bench/op_rows.h: every kernel of kernels/ops.cuh at MUSIQ's shapes,
// named "gpu/" + the CPU row's name so the two read side by side, plus the peak rows to
// read them against: gpu/peak/sgemm_cublas (FP32 SGEMM, TF32 off, as our GEMMs run) and
// gpu/peak/copy (device-to-device copy, the memory bandwidth).
// Without a usable device the only row is gpu/unavailable, skipped with the reason.
//
// Timing (manual time from CUDA events, one stream): each row builds its inputs once,
// warms up, and times one launch to choose K, the launches per event pair, so that a pair
// spans at least kPairMicros of device time (K <= kMaxLaunches). Then kRepeats times: a
// memset of twice the L2 size (outside the timed pair: the first launch of each pair starts
// with a cold L2), then the K launches between the two events, reported as the mean per
// launch. The host enqueues the K launches while the stream is held by a host function
// (cudaLaunchHostFunc) that waits for them, so the device runs them back to back and the
// pair measures the kernels, not the host's launch rate. Ops under L2 size therefore read
// as warm-L2 after the first launch, as inside the model, where the previous op often
// leaves its output in L2; larger ones are cold-L2 throughout.
// Bounded: a fixed kRepeats (Iterations), so a row's device time is about
// kRepeats * max(kPairMicros, t) plus the flushes, whatever t is (tools/gpu-check's header
// adds it up for the whole binary).
#include <benchmark/benchmark.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/resize_plan.h"
#include "bench/op_rows.h"
#include "bench/rate_counters.h"
#include "engine/device.h"
#include "kernels/cuda_check.h"
#include "kernels/device_array.h"
#include "kernels/ops.cuh"
#include "weights/config.h"

namespace musiq::bench {
namespace {

using cuda::DeviceArray;

constexpr int kRepeats = 20;            // timed event pairs per row
constexpr double kPairMicros = 100;     // device time an event pair spans at least
constexpr int kMaxLaunches = 100;       // launches per event pair at most (an op is a few
                                        // launches: far from the launch queue's depth)

// One stream, cuBLAS handle (the peak SGEMM) and GEMM context (GpuModel's, with its
// workspace, shared: one stream orders them), pair of events and L2-flush buffer for every row.
struct GpuBench {
  cudaStream_t stream = nullptr;
  cublasHandle_t blas = nullptr;
  cudaEvent_t start = nullptr, stop = nullptr;
  DeviceArray<unsigned char> flush, blas_workspace;
  std::unique_ptr<cuda::GemmContext> gemm;

  GpuBench() {
    CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    blas = cuda::make_blas_handle();
    blas_workspace.allocate(cuda::kBlasWorkspaceBytes, "the cuBLAS workspace");
    cuda::set_blas_workspace(blas, stream, blas_workspace.get(), cuda::kBlasWorkspaceBytes);
    gemm = std::make_unique<cuda::GemmContext>(blas_workspace.get(), cuda::kBlasWorkspaceBytes);
    CUDA_CHECK(cudaEventCreate(&start));
    CUDA_CHECK(cudaEventCreate(&stop));
    int device = 0, l2_bytes = 0;
    CUDA_CHECK(cudaGetDevice(&device));
    CUDA_CHECK(cudaDeviceGetAttribute(&l2_bytes, cudaDevAttrL2CacheSize, device));
    flush.allocate(2 * static_cast<size_t>(l2_bytes), "the L2 flush buffer");
  }
  static GpuBench& get() {
    static GpuBench bench;  // lives until exit; the driver reclaims it
    return bench;
  }
};

using GpuOp = std::function<void(GpuBench&)>;

// Device copies of host vectors, on the benchmark stream, kept alive by the op that uses
// them.
template <typename T>
std::shared_ptr<DeviceArray<T>> upload(const std::vector<T>& host) {
  auto a = std::make_shared<DeviceArray<T>>();
  a->upload(host, "a benchmark input", GpuBench::get().stream);
  return a;
}
template <typename T>
std::shared_ptr<DeviceArray<T>> scratch(int64_t count) {
  auto a = std::make_shared<DeviceArray<T>>();
  a->allocate(static_cast<size_t>(count), "a benchmark output");
  return a;
}

// Holds the stream until the host has enqueued a whole event pair (see the header). If
// the host cannot enqueue everything (a full launch queue would block it), the gate opens
// by itself after kGateSeconds and the pair is reported as an error, never a hang.
class StreamGate {
 public:
  static constexpr double kGateSeconds = 2.0;

  explicit StreamGate(cudaStream_t stream) : stream_(stream) {
    CUDA_CHECK(cudaLaunchHostFunc(stream, &StreamGate::wait, &state_));
  }
  // Never leaves the stream held, even on an exception, nor frees state_ while the host
  // function may still read it.
  ~StreamGate() {
    open();
    cudaStreamSynchronize(stream_);  // no throw from a destructor; errors surface later
  }
  void open() { state_.open.store(true, std::memory_order_release); }
  // After the pair has completed: whether the gate opened by itself.
  bool timed_out() const { return state_.timed_out.load(std::memory_order_acquire); }

 private:
  struct State {
    std::atomic<bool> open{false}, timed_out{false};
  };
  static void CUDART_CB wait(void* p) {
    State& s = *static_cast<State*>(p);
    const auto deadline = std::chrono::steady_clock::now() +
                          std::chrono::duration<double>(kGateSeconds);
    while (!s.open.load(std::memory_order_acquire)) {
      if (std::chrono::steady_clock::now() > deadline) {
        s.timed_out.store(true, std::memory_order_release);
        return;
      }
    }
  }
  cudaStream_t stream_;
  State state_;
};

// Device time of `launches` back-to-back calls of `op`, in ms; the L2 is flushed first.
float timed_pair(GpuBench& gpu, const GpuOp& op, int launches, unsigned char fill) {
  CUDA_CHECK(cudaMemsetAsync(gpu.flush.get(), fill, gpu.flush.size(), gpu.stream));
  StreamGate gate(gpu.stream);
  CUDA_CHECK(cudaEventRecord(gpu.start, gpu.stream));
  for (int i = 0; i < launches; ++i) op(gpu);
  CUDA_CHECK(cudaEventRecord(gpu.stop, gpu.stream));
  gate.open();
  CUDA_CHECK(cudaEventSynchronize(gpu.stop));
  if (gate.timed_out())
    throw Error("the host took over " + std::to_string(StreamGate::kGateSeconds) +
                " s to enqueue " + std::to_string(launches) + " launches");
  float ms = 0;
  CUDA_CHECK(cudaEventElapsedTime(&ms, gpu.start, gpu.stop));
  return ms;
}

// Google Benchmark calls a row's function once here (fixed Iterations); the inputs are
// built in it, once, and freed when it returns.
void add_row(const std::string& name, double flops, double bytes, std::function<GpuOp()> setup) {
  benchmark::RegisterBenchmark(("gpu/" + name).c_str(), [=](benchmark::State& state) {
    int launches = 1;
    try {
      GpuBench& gpu = GpuBench::get();
      const GpuOp op = setup();
      op(gpu);  // warm-up: first-launch costs stay out of the timing
      CUDA_CHECK(cudaStreamSynchronize(gpu.stream));
      const double one_us = 1e3 * timed_pair(gpu, op, 1, 0);
      launches = std::clamp(static_cast<int>(std::ceil(kPairMicros / std::max(one_us, 1e-3))),
                            1, kMaxLaunches);
      unsigned char fill = 1;
      for (auto _ : state)
        state.SetIterationTime(timed_pair(gpu, op, launches, fill++) / 1e3 / launches);
    } catch (const Error& e) {
      state.SkipWithError(e.what());
      return;
    }
    state.counters["launches_per_pair"] = launches;
    set_rate_counters(state, flops, bytes);
  })->UseManualTime()->Iterations(kRepeats)->Unit(benchmark::kMicrosecond);
}

void add_peak_rows() {
  constexpr int n = 8192;
  add_row("peak/sgemm_cublas/8192", 2.0 * n * n * n, 3.0 * n * n * 4, [] {
    auto a = upload(random_floats(int64_t{n} * n)), b = upload(random_floats(int64_t{n} * n, 1, 7));
    auto c = scratch<float>(int64_t{n} * n);
    return [=](GpuBench& gpu) {
      const float one = 1.0f, zero = 0.0f;
      cuda::check_cublas(cublasSgemm(gpu.blas, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &one,
                                     a->get(), n, b->get(), n, &zero, c->get(), n),
                         "cublasSgemm");
    };
  });
  // Read once, write once: 2 bytes of traffic per byte copied.
  constexpr int64_t bytes = int64_t{1} << 30;
  add_row("peak/copy/1GiB", 0, 2.0 * bytes, [] {
    auto src = scratch<unsigned char>(bytes), dst = scratch<unsigned char>(bytes);
    CUDA_CHECK(cudaMemsetAsync(src->get(), 1, bytes, GpuBench::get().stream));
    return [=](GpuBench& gpu) {
      CUDA_CHECK(cudaMemcpyAsync(dst->get(), src->get(), bytes, cudaMemcpyDeviceToDevice,
                                 gpu.stream));
    };
  });
}

// A resize plan on the device, with the arrays that back it.
struct UploadedPlan {
  std::shared_ptr<DeviceArray<int32_t>> starts;
  std::shared_ptr<DeviceArray<float>> weights;
  cuda::DeviceResizePlan plan;
  explicit UploadedPlan(const ResizePlan& p)
      : starts(upload(p.starts)), weights(upload(p.weights)) {
    plan = {p.in_size, p.out_size, p.span, starts->get(), weights->get()};
  }
};

// The kernel of one row on device buffers of seeded random values.
struct MakeGpuOp {
  GpuOp operator()(const NormalizeCall& c) const {
    auto rgb = upload(random_bytes(c.count));
    auto out = scratch<float>(c.count);
    return [=](GpuBench& g) { cuda::normalize_image(rgb->get(), c.count, out->get(), g.stream); };
  }
  GpuOp operator()(const ResizeCall& c) const {
    const UploadedPlan rows(gaussian_resize_plan(c.in_h, c.out_h));
    const UploadedPlan cols(gaussian_resize_plan(c.in_w, c.out_w));
    auto in = upload(random_floats(int64_t{c.in_h} * c.in_w * 3));
    auto tmp = scratch<float>(int64_t{c.out_h} * c.in_w * 3);
    auto out = scratch<float>(int64_t{c.out_h} * c.out_w * 3);
    return [=](GpuBench& g) {
      cuda::gaussian_resize(in->get(), c.in_h, c.in_w, 3, rows.plan, cols.plan, tmp->get(),
                            out->get(), g.stream);
    };
  }
  GpuOp operator()(const PatchesCall& c) const {
    const ScaleGeometry& geo = c.geometry;
    auto img = upload(random_floats(int64_t{c.height} * c.width * 3));
    auto out = scratch<float>(int64_t{geo.count_h} * geo.count_w * 32 * 32 * 3);
    return [=](GpuBench& g) {
      cuda::extract_patches(img->get(), c.height, c.width, 32, geo.count_h, geo.count_w,
                            geo.pad_top, geo.pad_left, out->get(), g.stream);
    };
  }
  GpuOp operator()(const ConvCall& c) const {
    auto in = upload(random_floats(int64_t{c.n} * c.in_hw * c.in_hw * c.cin));
    auto kernel = upload(random_floats(int64_t{c.k} * c.k * c.cin * c.cout,
                                       1.0f / std::sqrt(float(c.k * c.k * c.cin)), 7));
    auto cols = scratch<float>(c.k == 1 ? 0 : int64_t{c.n} * c.out_hw * c.out_hw * c.k * c.k * c.cin);
    auto out = scratch<float>(int64_t{c.n} * c.out_hw * c.out_hw * c.cout);
    return [=](GpuBench& g) {
      cuda::conv2d(in->get(), c.shape(), kernel->get(), cols->get(), out->get(), g.gemm.get(),
                   g.stream);
    };
  }
  GpuOp operator()(const GroupNormCall& c) const {
    auto x = upload(random_floats(int64_t{c.n} * c.hw * c.c));
    auto scale = upload(random_floats(c.c, 0.1f, 7)), bias = upload(random_floats(c.c, 0.1f, 8));
    return [=](GpuBench& g) {
      cuda::group_norm(x->get(), c.n, c.hw, c.c, kStemGroups, scale->get(), bias->get(), c.eps,
                       c.relu, g.stream);
    };
  }
  GpuOp operator()(const MaxPoolCall& c) const {
    auto in = upload(random_floats(int64_t{c.n} * c.in_hw * c.in_hw * c.c));
    auto out = scratch<float>(int64_t{c.n} * c.out_hw * c.out_hw * c.c);
    return [=](GpuBench& g) {
      cuda::max_pool_3x3_s2(in->get(), c.n, c.in_hw, c.in_hw, c.c, c.out_hw, c.out_hw,
                            out->get(), g.stream);
    };
  }
  GpuOp operator()(const AddReluCall& c) const {
    auto x = upload(random_floats(c.count)), r = upload(random_floats(c.count, 1.0f, 7));
    return [=](GpuBench& g) { cuda::add_relu(x->get(), r->get(), c.count, g.stream); };
  }
  GpuOp operator()(const LinearCall& c) const {
    auto a = upload(random_floats(c.m * c.k));
    auto b = upload(random_floats(int64_t{c.k} * c.n, 1.0f / std::sqrt(float(c.k)), 7));
    auto bias = upload(random_floats(c.n, 0.02f, 8));
    auto out = upload(random_floats(c.m * c.n, 1.0f, 9));
    return [=](GpuBench& g) {
      cuda::linear(a->get(), c.m, c.k, b->get(), c.n, bias->get(), c.epilogue, out->get(),
                   g.gemm.get(), g.stream);
    };
  }
  GpuOp operator()(const LayerNormCall& c) const {
    auto x = upload(random_floats(c.rows * c.dim));
    auto scale = upload(random_floats(c.dim, 0.1f, 7)), bias = upload(random_floats(c.dim, 0.1f, 8));
    auto out = scratch<float>(c.rows * c.dim);
    return [=](GpuBench& g) {
      cuda::layer_norm(x->get(), c.rows, c.dim, scale->get(), bias->get(), kLayerNormEps,
                       out->get(), g.stream);
    };
  }
  GpuOp operator()(const EmbeddingsCall& c) const {
    const ModelConfig config;
    const EmbeddingIndices idx = embedding_indices(c.rows);
    auto spatial = upload(idx.spatial), scale_id = upload(idx.scale_id);
    auto x = upload(random_floats(c.rows * c.dim));
    auto pos = upload(random_floats(int64_t{config.hse_grid_size} * config.hse_grid_size * c.dim,
                                    0.02f, 7));
    auto scl = upload(random_floats(int64_t{config.num_scales()} * c.dim, 0.02f, 8));
    return [=](GpuBench& g) {
      cuda::add_embeddings(x->get(), c.rows, c.dim, spatial->get(), scale_id->get(), pos->get(),
                           scl->get(), g.stream);
    };
  }
  GpuOp operator()(const AttentionCall& c) const {
    const ModelConfig config;
    auto qkv = upload(random_floats(c.len * 3 * config.hidden_size));
    auto out = scratch<float>(c.q_rows * config.hidden_size);
    auto starts = upload(std::vector<int64_t>{0, c.len});
    auto partials = scratch<float>(cuda::attention_scratch_floats(1, config.num_heads));
    return [=](GpuBench& g) {
      cuda::attention(qkv->get(), starts->get(), 1, c.len, config.num_heads, config.head_dim(),
                      c.q_rows == 1 ? Queries::kFirst : Queries::kAll, partials->get(),
                      out->get(), g.stream);
    };
  }
  GpuOp operator()(const HeadScoreCall& c) const {
    auto logits = upload(random_floats(c.classes));
    auto score = scratch<float>(1);
    return [=](GpuBench& g) { cuda::head_score(logits->get(), 1, c.classes, score->get(), g.stream); };
  }
};

[[maybe_unused]] const bool registered = [] {
  const GpuProbe probe = probe_gpu();
  if (!probe.usable) {
    benchmark::RegisterBenchmark("gpu/unavailable", [problem = probe.problem](benchmark::State& s) {
      s.SkipWithError(problem.c_str());
    });
    return true;
  }
  add_peak_rows();
  for (const OpRow& row : musiq_op_rows())
    add_row(row.name, row.flops, row.bytes,
            [call = row.call] { return std::visit(MakeGpuOp{}, call); });
  return true;
}();

}  // namespace
}  // namespace musiq::bench
