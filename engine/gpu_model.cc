// GpuModel: the forward pass of engine/cpu_model.cc on the GPU, stage for stage, with the
// kernels of kernels/ops.cuh on one stream and one cuBLAS handle. Host code only.
//
// Memory: the weights are uploaded once (device buffers, RAII). Everything per image lives
// in one device workspace carved into slices (x, y, qkv, ctx, mlp for the sequence; the
// uploaded tokens; the stem's scratch for one chunk of kStemChunk tokens), sized from the
// token count and reallocated only when a larger image comes; likewise the pinned host
// buffers the tokens are uploaded through (the patches' only by score(): score_image has
// none to upload). cuBLAS gets a fixed workspace of its own at construction
// (cuda::set_blas_workspace: after cublasSetStream, which would reset it), so it allocates
// nothing while scoring either.
// Per token: ~14 KB of sequence buffers + 12 KB of patches; the stem chunk is ~200 MB for
// 512 tokens; a 12,000-token photo needs ~520 MB in all (estimate, not measured).
//
// NVTX ranges (nvtx3, header-only) mark the stages: upload, stem, embeddings, each
// encoder block, head. They time the host's enqueueing; Nsight Systems shows the kernels
// launched inside each range.
//
// Preprocessing: score_image() uploads the decoded bytes and runs spec section 2 on the
// device (normalize, the Gaussian resizes, patch extraction; kernels bit-identical to the
// CPU's), with the plan (scales, resize taps, hashed indices) from plan_tokens on the host.
// score() takes tokens made on the CPU (make_tokens) and uploads them as they are.
// CUDA events around the stages give last_run_stats() (upload, preprocess, model).
//
// Unverified: written and compiled without a GPU. tests/gpu/gpu_model_test.cc compares
// scores with CpuModel (1e-4 relative) and scores a ~12,000-token image; run it first.
#include "engine/gpu_model.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <nvtx3/nvToolsExt.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "engine/error.h"
#include "kernels/cuda_check.h"
#include "kernels/device_array.h"
#include "kernels/ops.cuh"

namespace musiq {
namespace {

using cuda::DeviceArray;
using cuda::mib;

constexpr int64_t kStemChunk = 512;  // tokens through the stem at once: bounded scratch
constexpr int kPatch = 32, kRootOut = 16, kPoolOut = 8;
constexpr int64_t kAlignFloats = 64;                       // slices start on 256 bytes

// Page-locked host memory (async copies from it really are asynchronous), grown on demand.
template <typename T>
class PinnedArray {
 public:
  PinnedArray() = default;
  PinnedArray(const PinnedArray&) = delete;
  PinnedArray& operator=(const PinnedArray&) = delete;
  ~PinnedArray() {
    if (data_) cudaFreeHost(data_);
  }
  void ensure(size_t count) {
    if (count <= count_) return;
    if (data_) cudaFreeHost(data_);
    data_ = nullptr;
    count_ = 0;
    void* p = nullptr;
    const cudaError_t status = cudaHostAlloc(&p, count * sizeof(T), cudaHostAllocDefault);
    if (status != cudaSuccess) {
      cudaGetLastError();
      throw Error("GPU: cannot allocate " + mib(double(count) * sizeof(T)) +
                  " of pinned host memory for the token upload (" +
                  cudaGetErrorString(status) + ")");
    }
    data_ = static_cast<T*>(p);
    count_ = count;
  }
  T* get() const { return data_; }

 private:
  T* data_ = nullptr;
  size_t count_ = 0;
};

struct DeviceGroupNorm {
  DeviceArray<float> scale, bias;
};

struct DeviceBlock {
  DeviceArray<float> ln0_scale, ln0_bias, qkv_kernel, qkv_bias, out_kernel, out_bias;
  DeviceArray<float> ln2_scale, ln2_bias, mlp0_kernel, mlp0_bias, mlp1_kernel, mlp1_bias;
};

// Scoped NVTX range.
class NvtxRange {
 public:
  explicit NvtxRange(const char* name) { nvtxRangePushA(name); }
  ~NvtxRange() { nvtxRangePop(); }
  NvtxRange(const NvtxRange&) = delete;
  NvtxRange& operator=(const NvtxRange&) = delete;
};

// Reallocates only when more is needed than `a` holds.
template <typename T>
void grow(DeviceArray<T>& a, size_t count, const char* what) {
  if (a.size() < count) a.allocate(count, what);
}

float elapsed_ms(cudaEvent_t from, cudaEvent_t to) {
  float ms = 0;
  CUDA_CHECK(cudaEventElapsedTime(&ms, from, to));
  return ms;
}

}  // namespace

struct GpuModel::Impl {
  ModelConfig config;
  int device = 0;
  cudaStream_t stream = nullptr;
  cublasHandle_t blas = nullptr;
  DeviceArray<unsigned char> blas_workspace;

  // Weights, as in ModelWeights.
  DeviceArray<float> conv_root, conv_proj, conv1, conv2, conv3;
  DeviceGroupNorm gn_root, gn_proj, gn1, gn2, gn3;
  DeviceArray<float> embedding_kernel, embedding_bias, pos_embedding, scale_embedding, cls;
  std::vector<DeviceBlock> blocks;
  DeviceArray<float> encoder_norm_scale, encoder_norm_bias, head_kernel, head_bias;
  size_t weight_bytes = 0;

  // Per-image workspace (one allocation) and its slices for the current capacity.
  DeviceArray<float> workspace;
  int64_t capacity_tokens = -1;
  float *x = nullptr, *y = nullptr, *qkv = nullptr, *ctx = nullptr, *mlp = nullptr;
  float* patches = nullptr;
  int32_t *spatial = nullptr, *scale_id = nullptr;
  float *columns = nullptr, *root = nullptr, *pooled = nullptr, *proj = nullptr;
  float *mid = nullptr, *mid2 = nullptr, *unit = nullptr;
  float *logits = nullptr, *score = nullptr;

  PinnedArray<float> host_patches, host_score;
  PinnedArray<int32_t> host_spatial, host_scale_id;

  // score_image's device preprocessing: the decoded bytes, the normalized image, the
  // resize intermediate and result, one scale's patches when a scale keeps fewer tokens
  // than it has patches, and the resize plans. Grown to the largest image seen.
  DeviceArray<uint8_t> rgb;
  DeviceArray<float> normalized, resize_tmp, resized, scale_patches, plan_weights;
  DeviceArray<int32_t> plan_starts;
  PinnedArray<uint8_t> host_rgb;
  PinnedArray<float> host_plan_weights;
  PinnedArray<int32_t> host_plan_starts;

  // Stage boundaries of the last call, on the stream.
  cudaEvent_t started = nullptr, uploaded = nullptr, preprocessed = nullptr, done = nullptr;
  GpuRunStats last_run;

  ~Impl() {
    for (cudaEvent_t e : {started, uploaded, preprocessed, done})
      if (e) cudaEventDestroy(e);
    if (blas) cublasDestroy(blas);
    if (stream) cudaStreamDestroy(stream);
  }

  void upload(DeviceArray<float>& dst, const std::vector<float>& src, const char* what) {
    dst.upload(src, what, stream);  // on the model's stream: ordered before any kernel
    weight_bytes += src.size() * sizeof(float);
  }

  void ensure_workspace(int64_t n);
  void upload_indices(const std::vector<int32_t>& spatial_ids, const std::vector<int32_t>& scale_ids);
  void preprocess_on_device(const Image& image, const TokenPlan& plan);
  float forward(int64_t n);  // patches, spatial and scale_id are on the device
  void embed_chunk(int64_t first, int64_t count, float* out);
  void encoder_block(const DeviceBlock& b, int64_t len, int64_t keep_rows);
};

void GpuModel::Impl::ensure_workspace(int64_t n) {
  if (n <= capacity_tokens) return;
  const int h = config.hidden_size;
  const int64_t len = n + 1;
  const int64_t chunk = std::max<int64_t>(1, std::min(kStemChunk, n));
  const int64_t root_px = chunk * kRootOut * kRootOut, pool_px = chunk * kPoolOut * kPoolOut;
  // Slice sizes in floats, in carving order.
  const int64_t sizes[] = {
      len * h,                                                  // x
      len * h,                                                  // y
      len * 3 * h,                                              // qkv
      len * h,                                                  // ctx
      len * config.mlp_dim,                                     // mlp
      n * config.patch_values(),                                // patches
      n,                                                        // spatial (int32)
      n,                                                        // scale_id (int32)
      std::max(root_px * 7 * 7 * 3, pool_px * 3 * 3 * kStemWidth),  // columns
      root_px * kStemWidth,                                     // root
      pool_px * kStemWidth,                                     // pooled
      pool_px * kStemOutWidth,                                  // proj
      pool_px * kStemWidth,                                     // mid
      pool_px * kStemWidth,                                     // mid2
      pool_px * kStemOutWidth,                                  // unit
      config.num_classes,                                       // logits
      1,                                                        // score
  };
  int64_t total = 0;
  for (int64_t s : sizes) total += (s + kAlignFloats - 1) / kAlignFloats * kAlignFloats;

  capacity_tokens = -1;
  workspace.reset();  // free the old one first: the new one may need that memory
  try {
    workspace.allocate(size_t(total), "the per-image workspace");
  } catch (const Error& e) {
    throw Error("GPU out of memory: scoring an image of " + std::to_string(n + 1) +
                " tokens needs " + mib(double(total) * sizeof(float)) +
                " of device workspace besides the " + mib(double(weight_bytes)) +
                " of weights (" + e.what() + ")");
  }
  float* p = workspace.get();
  int slot = 0;
  auto next = [&]() {
    float* s = p;
    p += (sizes[slot++] + kAlignFloats - 1) / kAlignFloats * kAlignFloats;
    return s;
  };
  x = next();
  y = next();
  qkv = next();
  ctx = next();
  mlp = next();
  patches = next();
  spatial = reinterpret_cast<int32_t*>(next());
  scale_id = reinterpret_cast<int32_t*>(next());
  columns = next();
  root = next();
  pooled = next();
  proj = next();
  mid = next();
  mid2 = next();
  unit = next();
  logits = next();
  score = next();
  capacity_tokens = n;  // only once everything above succeeded
}

// Mirrors CpuModel::embed_chunk.
void GpuModel::Impl::embed_chunk(int64_t first, int64_t count, float* out) {
  const int n = static_cast<int>(count);
  const int64_t pool_px = int64_t{n} * kPoolOut * kPoolOut;
  const float* in = patches + first * config.patch_values();

  // Root: 7x7/2 SAME conv (pad 2 before, 3 after), GroupNorm + ReLU, 3x3/2 max-pool.
  cuda::conv2d(in, n, kPatch, kPatch, 3, conv_root.get(), 7, 7, kStemWidth, 2, 2, 2, kRootOut,
               kRootOut, columns, root, blas, stream);
  cuda::group_norm(root, n, kRootOut * kRootOut, kStemWidth, kStemGroups, gn_root.scale.get(),
                   gn_root.bias.get(), kRootGroupNormEps, true, stream);
  cuda::max_pool_3x3_s2(root, n, kRootOut, kRootOut, kStemWidth, kPoolOut, kPoolOut, pooled,
                        stream);

  // block1/unit1: bottleneck with projection.
  const int hw = kPoolOut * kPoolOut;
  cuda::conv2d(pooled, n, kPoolOut, kPoolOut, kStemWidth, conv_proj.get(), 1, 1, kStemOutWidth,
               1, 0, 0, kPoolOut, kPoolOut, nullptr, proj, blas, stream);
  cuda::group_norm(proj, n, hw, kStemOutWidth, kStemGroups, gn_proj.scale.get(),
                   gn_proj.bias.get(), kUnitGroupNormEps, false, stream);
  cuda::conv2d(pooled, n, kPoolOut, kPoolOut, kStemWidth, conv1.get(), 1, 1, kStemWidth, 1, 0,
               0, kPoolOut, kPoolOut, nullptr, mid, blas, stream);
  cuda::group_norm(mid, n, hw, kStemWidth, kStemGroups, gn1.scale.get(), gn1.bias.get(),
                   kUnitGroupNormEps, true, stream);
  cuda::conv2d(mid, n, kPoolOut, kPoolOut, kStemWidth, conv2.get(), 3, 3, kStemWidth, 1, 1, 1,
               kPoolOut, kPoolOut, columns, mid2, blas, stream);
  cuda::group_norm(mid2, n, hw, kStemWidth, kStemGroups, gn2.scale.get(), gn2.bias.get(),
                   kUnitGroupNormEps, true, stream);
  cuda::conv2d(mid2, n, kPoolOut, kPoolOut, kStemWidth, conv3.get(), 1, 1, kStemOutWidth, 1, 0,
               0, kPoolOut, kPoolOut, nullptr, unit, blas, stream);
  cuda::group_norm(unit, n, hw, kStemOutWidth, kStemGroups, gn3.scale.get(), gn3.bias.get(),
                   kUnitGroupNormEps, false, stream);
  cuda::add_relu(unit, proj, pool_px * kStemOutWidth, stream);

  // Flatten (h, w, c) -> 16384 and project to the hidden size.
  cuda::linear(unit, n, hw * kStemOutWidth, embedding_kernel.get(), config.hidden_size,
               embedding_bias.get(), cpu::Epilogue::kBias, out, blas, stream);
}

// Mirrors CpuModel::encoder_block: only the first keep_rows rows are updated.
void GpuModel::Impl::encoder_block(const DeviceBlock& b, int64_t len, int64_t keep_rows) {
  const int h = config.hidden_size;
  cuda::layer_norm(x, len, h, b.ln0_scale.get(), b.ln0_bias.get(), kLayerNormEps, y, stream);
  cuda::linear(y, len, h, b.qkv_kernel.get(), 3 * h, b.qkv_bias.get(), cpu::Epilogue::kBias,
               qkv, blas, stream);
  cuda::attention(qkv, len, config.num_heads, config.head_dim(), keep_rows, ctx, stream);
  cuda::linear(ctx, keep_rows, h, b.out_kernel.get(), h, b.out_bias.get(),
               cpu::Epilogue::kBiasResidual, x, blas, stream);
  cuda::layer_norm(x, keep_rows, h, b.ln2_scale.get(), b.ln2_bias.get(), kLayerNormEps, y,
                   stream);
  cuda::linear(y, keep_rows, h, b.mlp0_kernel.get(), config.mlp_dim, b.mlp0_bias.get(),
               cpu::Epilogue::kBiasGelu, mlp, blas, stream);
  cuda::linear(mlp, keep_rows, config.mlp_dim, b.mlp1_kernel.get(), h, b.mlp1_bias.get(),
               cpu::Epilogue::kBiasResidual, x, blas, stream);
}

GpuModel::GpuModel(ModelWeights w) : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.config = w.config;
  if (m.config.head_dim() != 64)
    throw Error("GPU: head_dim " + std::to_string(m.config.head_dim()) +
                " is not supported by the attention kernel (64 only); use --device cpu");
  CUDA_CHECK(cudaSetDevice(m.device));
  CUDA_CHECK(cudaStreamCreateWithFlags(&m.stream, cudaStreamNonBlocking));
  for (cudaEvent_t* e : {&m.started, &m.uploaded, &m.preprocessed, &m.done})
    CUDA_CHECK(cudaEventCreate(e));
  m.blas = cuda::make_blas_handle();
  m.blas_workspace.allocate(cuda::kBlasWorkspaceBytes, "the cuBLAS workspace");
  cuda::set_blas_workspace(m.blas, m.stream, m.blas_workspace.get(), cuda::kBlasWorkspaceBytes);

  m.upload(m.conv_root, w.conv_root, "conv_root");
  m.upload(m.conv_proj, w.conv_proj, "conv_proj");
  m.upload(m.conv1, w.conv1, "conv1");
  m.upload(m.conv2, w.conv2, "conv2");
  m.upload(m.conv3, w.conv3, "conv3");
  const std::pair<DeviceGroupNorm*, const GroupNormWeights*> norms[] = {
      {&m.gn_root, &w.gn_root}, {&m.gn_proj, &w.gn_proj}, {&m.gn1, &w.gn1},
      {&m.gn2, &w.gn2},         {&m.gn3, &w.gn3}};
  for (const auto& [dst, src] : norms) {
    m.upload(dst->scale, src->scale, "a GroupNorm scale");
    m.upload(dst->bias, src->bias, "a GroupNorm bias");
  }
  m.upload(m.embedding_kernel, w.embedding_kernel, "embedding/kernel");
  m.upload(m.embedding_bias, w.embedding_bias, "embedding/bias");
  m.upload(m.pos_embedding, w.pos_embedding, "pos_embedding");
  m.upload(m.scale_embedding, w.scale_embedding, "scale_embedding");
  m.upload(m.cls, w.cls, "cls");
  m.blocks = std::vector<DeviceBlock>(w.blocks.size());
  for (size_t i = 0; i < w.blocks.size(); ++i) {
    const EncoderBlockWeights& s = w.blocks[i];
    DeviceBlock& d = m.blocks[i];
    m.upload(d.ln0_scale, s.ln0_scale, "an encoder LayerNorm");
    m.upload(d.ln0_bias, s.ln0_bias, "an encoder LayerNorm");
    m.upload(d.qkv_kernel, s.qkv_kernel, "an attention kernel");
    m.upload(d.qkv_bias, s.qkv_bias, "an attention bias");
    m.upload(d.out_kernel, s.out_kernel, "an attention output kernel");
    m.upload(d.out_bias, s.out_bias, "an attention output bias");
    m.upload(d.ln2_scale, s.ln2_scale, "an encoder LayerNorm");
    m.upload(d.ln2_bias, s.ln2_bias, "an encoder LayerNorm");
    m.upload(d.mlp0_kernel, s.mlp0_kernel, "an MLP kernel");
    m.upload(d.mlp0_bias, s.mlp0_bias, "an MLP bias");
    m.upload(d.mlp1_kernel, s.mlp1_kernel, "an MLP kernel");
    m.upload(d.mlp1_bias, s.mlp1_bias, "an MLP bias");
  }
  m.upload(m.encoder_norm_scale, w.encoder_norm_scale, "encoder_norm");
  m.upload(m.encoder_norm_bias, w.encoder_norm_bias, "encoder_norm");
  m.upload(m.head_kernel, w.head_kernel, "head/kernel");
  m.upload(m.head_bias, w.head_bias, "head/bias");
  CUDA_CHECK(cudaStreamSynchronize(m.stream));  // a failed copy surfaces here
  m.host_score.ensure(1);
}

GpuModel::~GpuModel() = default;

const ModelConfig& GpuModel::config() const { return impl_->config; }

void GpuModel::Impl::upload_indices(const std::vector<int32_t>& spatial_ids,
                                     const std::vector<int32_t>& scale_ids) {
  const size_t n = spatial_ids.size();
  if (n == 0) return;
  host_spatial.ensure(n);
  host_scale_id.ensure(n);
  std::memcpy(host_spatial.get(), spatial_ids.data(), n * 4);
  std::memcpy(host_scale_id.get(), scale_ids.data(), n * 4);
  CUDA_CHECK(cudaMemcpyAsync(spatial, host_spatial.get(), n * 4, cudaMemcpyHostToDevice, stream));
  CUDA_CHECK(cudaMemcpyAsync(scale_id, host_scale_id.get(), n * 4, cudaMemcpyHostToDevice, stream));
}

// Mirrors make_tokens: the tokens of every scale of `plan` into `patches`, in order.
void GpuModel::Impl::preprocess_on_device(const Image& image, const TokenPlan& plan) {
  const int h = image.height, w = image.width;
  const int pv = config.patch_values();
  const size_t count = size_t(h) * w * 3;
  size_t starts = 0, weights = 0, tmp = 0, out = 0, scratch = 0;
  for (const ScalePlan& scale : plan.scales) {
    const ScaleGeometry& g = scale.geometry;
    if (scale.resized) {
      starts += scale.rows.starts.size() + scale.cols.starts.size();
      weights += scale.rows.weights.size() + scale.cols.weights.size();
      tmp = std::max(tmp, size_t(g.height) * w * 3);
      out = std::max(out, size_t(g.height) * g.width * 3);
    }
    const int64_t all = int64_t{g.count_h} * g.count_w;
    if (all != g.tokens) scratch = std::max(scratch, size_t(all) * pv);
  }
  grow(rgb, count, "the decoded image");
  grow(normalized, count, "the normalized image");
  grow(resize_tmp, tmp, "the resize intermediate");
  grow(resized, out, "the resized image");
  grow(scale_patches, scratch, "one scale's patches");
  grow(plan_starts, starts, "the resize plans");
  grow(plan_weights, weights, "the resize plans");
  host_rgb.ensure(count);
  host_plan_starts.ensure(std::max<size_t>(starts, 1));
  host_plan_weights.ensure(std::max<size_t>(weights, 1));

  {
    NvtxRange range("upload");
    std::memcpy(host_rgb.get(), image.rgb.data(), count);
    CUDA_CHECK(cudaMemcpyAsync(rgb.get(), host_rgb.get(), count, cudaMemcpyHostToDevice, stream));
    int32_t* hs = host_plan_starts.get();
    float* hw = host_plan_weights.get();
    for (const ScalePlan& scale : plan.scales) {
      for (const ResizePlan* axis : {&scale.rows, &scale.cols}) {
        hs = std::copy(axis->starts.begin(), axis->starts.end(), hs);
        hw = std::copy(axis->weights.begin(), axis->weights.end(), hw);
      }
    }
    if (starts > 0) {
      CUDA_CHECK(cudaMemcpyAsync(plan_starts.get(), host_plan_starts.get(), starts * 4,
                                 cudaMemcpyHostToDevice, stream));
      CUDA_CHECK(cudaMemcpyAsync(plan_weights.get(), host_plan_weights.get(), weights * 4,
                                 cudaMemcpyHostToDevice, stream));
    }
    upload_indices(plan.spatial, plan.scale_id);
    CUDA_CHECK(cudaEventRecord(uploaded, stream));
  }

  NvtxRange range("preprocess");
  cuda::normalize_image(rgb.get(), static_cast<int64_t>(count), normalized.get(), stream);
  const int32_t* next_starts = plan_starts.get();
  const float* next_weights = plan_weights.get();
  auto device_plan = [&](const ResizePlan& p) {
    const cuda::DeviceResizePlan d{p.in_size, p.out_size, p.span, next_starts, next_weights};
    next_starts += p.starts.size();
    next_weights += p.weights.size();
    return d;
  };
  int64_t offset = 0;
  for (const ScalePlan& scale : plan.scales) {
    const ScaleGeometry& g = scale.geometry;
    const float* pixels = normalized.get();
    if (scale.resized) {
      const cuda::DeviceResizePlan rows = device_plan(scale.rows);
      const cuda::DeviceResizePlan cols = device_plan(scale.cols);
      cuda::gaussian_resize(normalized.get(), h, w, 3, rows, cols, resize_tmp.get(),
                            resized.get(), stream);
      pixels = resized.get();
    }
    float* dst = patches + offset * pv;
    const bool keeps_all = int64_t{g.count_h} * g.count_w == g.tokens;
    cuda::extract_patches(pixels, g.height, g.width, config.patch_size, g.count_h, g.count_w,
                          g.pad_top, g.pad_left, keeps_all ? dst : scale_patches.get(), stream);
    if (!keeps_all)
      CUDA_CHECK(cudaMemcpyAsync(dst, scale_patches.get(), size_t(g.tokens) * pv * 4,
                                 cudaMemcpyDeviceToDevice, stream));
    offset += g.tokens;
  }
}

float GpuModel::Impl::forward(int64_t n) {
  const ModelConfig& c = config;
  const int h = c.hidden_size;
  const int64_t len = n + 1;
  cudaStream_t s = stream;
  CUDA_CHECK(cudaEventRecord(preprocessed, s));
  CUDA_CHECK(cudaMemcpyAsync(x, cls.get(), size_t(h) * 4, cudaMemcpyDeviceToDevice, s));
  {
    NvtxRange range("stem");
    for (int64_t first = 0; first < n; first += kStemChunk)
      embed_chunk(first, std::min(kStemChunk, n - first), x + (1 + first) * h);
  }
  {
    NvtxRange range("embeddings");
    cuda::add_embeddings(x + h, n, h, spatial, scale_id, pos_embedding.get(),
                         scale_embedding.get(), s);
  }
  // Only the CLS row is read at the end, so the last block updates row 0 alone.
  for (int i = 0; i < c.num_layers; ++i) {
    NvtxRange range("encoder_block");
    encoder_block(blocks[i], len, i + 1 == c.num_layers ? 1 : len);
  }
  {
    NvtxRange range("head");
    cuda::layer_norm(x, 1, h, encoder_norm_scale.get(), encoder_norm_bias.get(), kLayerNormEps,
                     y, s);
    cuda::linear(y, 1, h, head_kernel.get(), c.num_classes, head_bias.get(),
                 cpu::Epilogue::kBias, logits, blas, s);
    cuda::head_score(logits, c.num_classes, score, s);
    CUDA_CHECK(cudaEventRecord(done, s));
    CUDA_CHECK(cudaMemcpyAsync(host_score.get(), score, sizeof(float), cudaMemcpyDeviceToHost, s));
    CUDA_CHECK(cudaStreamSynchronize(s));  // also surfaces faults inside any kernel above
  }
  last_run = {len, elapsed_ms(started, uploaded), elapsed_ms(uploaded, preprocessed),
              elapsed_ms(preprocessed, done)};
  return *host_score.get();
}

float GpuModel::score(const Tokens& tokens) {
  Impl& m = *impl_;
  const int64_t n = tokens.count();
  if (tokens.patch_values != m.config.patch_values() ||
      int64_t(tokens.patches.size()) != n * m.config.patch_values() ||
      int64_t(tokens.scale_id.size()) != n)
    throw Error("GpuModel::score: tokens do not match the model's patch size");
  CUDA_CHECK(cudaSetDevice(m.device));  // the calling thread may not be the constructing one
  m.ensure_workspace(n);
  m.host_patches.ensure(std::max<size_t>(tokens.patches.size(), 1));  // 12 KB per token
  CUDA_CHECK(cudaEventRecord(m.started, m.stream));
  {
    NvtxRange range("upload");
    if (n > 0) {
      std::memcpy(m.host_patches.get(), tokens.patches.data(), tokens.patches.size() * 4);
      CUDA_CHECK(cudaMemcpyAsync(m.patches, m.host_patches.get(), tokens.patches.size() * 4,
                                 cudaMemcpyHostToDevice, m.stream));
    }
    m.upload_indices(tokens.spatial, tokens.scale_id);
    CUDA_CHECK(cudaEventRecord(m.uploaded, m.stream));
  }
  return m.forward(n);
}

float GpuModel::score_image(const Image& image) {
  Impl& m = *impl_;
  check_image(image);
  const TokenPlan plan = plan_tokens(image.height, image.width, m.config);
  CUDA_CHECK(cudaSetDevice(m.device));
  m.ensure_workspace(plan.count());
  CUDA_CHECK(cudaEventRecord(m.started, m.stream));
  m.preprocess_on_device(image, plan);
  return m.forward(plan.count());
}

GpuRunStats GpuModel::last_run_stats() const { return impl_->last_run; }

}  // namespace musiq
