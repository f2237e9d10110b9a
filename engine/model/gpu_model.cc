// GpuModel: engine/model/forward.h on the GPU, with the kernels of kernels/ops.cuh on one stream
// and one cuBLASLt context. Host code only.
//
// Memory: the weights block (engine/model/model_weights.h) is uploaded in one copy. Under bf16
// each kernel (docs/precision.md: every Dense and convolution kernel but the head's) is then
// rounded on the device into a bfloat16 copy beside the block, which the GEMMs read; the
// block stays whole, one layout for every precision, at half again the weights' memory.
// Everything per batch lives in one device workspace laid out by engine/model/workspace.h
// (sequence buffers, the uploaded input, the stem's scratch for kStemChunk tokens, under
// bf16 a product's rounded input), reallocated only when a larger batch comes;
// host-to-device copies go through one pinned staging buffer, grown likewise. The GEMMs
// (cuBLASLt) get a fixed workspace of their own, so they allocate nothing while scoring.
// Per token: ~14 KB of sequence buffers + 12 KB of patches; the stem chunk is ~200 MB for
// 512 tokens; a 12,000-token photo needs ~520 MB in all (estimate, not measured).
//
// The forward pass of a batch shape seen before runs as a CUDA graph (forward_graphs.h).
//
// NVTX ranges (nvtx3, header-only) mark the stages: upload, preprocess, stem, embeddings,
// each encoder block, head. They time the host's enqueueing; Nsight Systems shows the
// kernels launched inside each range.
//
// Decoded images are preprocessed on the device by the same code as on the CPU,
// engine/preprocess/token_patches.h, over kernels bit-identical to the CPU's ops, into
// their rows of the packed patches, with the plan (scales, resize taps, hashed indices)
// from plan_tokens on the host.
//
// Unverified: written and compiled without a GPU. tests/gpu/gpu_model_test.cc compares
// scores with CpuModel (1e-4 relative), batches with singles, and scores a ~12,000-token
// image; run it first.
#include "engine/model/gpu_model.h"

#include <cuda_runtime.h>
#include <nvtx3/nvToolsExt.h>

#include <algorithm>
#include <cstring>
#include <span>
#include <string>
#include <unordered_map>

#include "base/error.h"
#include "engine/model/forward.h"
#include "engine/model/forward_graphs.h"
#include "engine/model/packed_batch.h"
#include "engine/model/workspace.h"
#include "engine/preprocess/token_patches.h"
#include "kernels/cuda_check.h"
#include "kernels/device_array.h"
#include "kernels/ops.cuh"

namespace musiq {
namespace {

using cuda::DeviceArray;
using cuda::mib;

constexpr size_t kStagingAlign = 256;

// Page-locked host memory (async copies from it really are asynchronous), grown on demand.
class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;
  ~PinnedBuffer() {
    if (data_) cudaFreeHost(data_);
  }
  void ensure(size_t bytes) {
    if (bytes <= bytes_) return;
    if (data_) cudaFreeHost(data_);
    data_ = nullptr;
    bytes_ = 0;
    void* p = nullptr;
    const cudaError_t status = cudaHostAlloc(&p, bytes, cudaHostAllocDefault);
    if (status != cudaSuccess) {
      cudaGetLastError();
      throw Error("GPU: cannot allocate " + mib(double(bytes)) +
                  " of pinned host memory for the upload (" + cudaGetErrorString(status) + ")");
    }
    data_ = static_cast<unsigned char*>(p);
    bytes_ = bytes;
  }
  unsigned char* get() const { return data_; }

 private:
  unsigned char* data_ = nullptr;
  size_t bytes_ = 0;
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

// Under bf16, each Dense and convolution kernel's bfloat16 copy by its float32 original
// (device pointers): the GEMMs take the copy, the forward pass names the original.
using Bf16Kernels = std::unordered_map<const float*, const __nv_bfloat16*>;

// A host ResizePlan and its copy on the device.
struct UploadedResizePlan {
  const ResizePlan* host;
  cuda::DeviceResizePlan device;
};

// The device of engine/model/forward.h and of engine/preprocess/token_patches.h on the GPU:
// kernels/ops.cuh on one stream and handle.
struct CudaOps {
  static constexpr int64_t kStemChunk = 512;  // tokens through the stem at once
  cuda::GemmContext* gemm;
  cudaStream_t stream;
  float* attention_scratch;  // cuda::attention's, for the batch
  Precision precision;
  const Bf16Kernels& bf16_kernels;
  // Under bf16: a product's input rounded, for the batch (Workspace::bf16_input).
  __nv_bfloat16* bf16_input;
  // The resize plans of the image being preprocessed, uploaded.
  std::span<const UploadedResizePlan> resize_plans = {};

  NvtxRange range(const char* name) { return NvtxRange(name); }
  // The stem's kernels are parallel over the whole chunk already: one tile, with the
  // workspace's scratch.
  template <typename F> void stem_tiles(const Workspace& ws, int64_t count, F&& f) {
    f(0, count, stem_scratch_at(ws.stem_scratch, count));
  }
  void copy(float* dst, const float* src, int64_t count) {
    CUDA_CHECK(cudaMemcpyAsync(dst, src, size_t(count) * sizeof(float), cudaMemcpyDeviceToDevice,
                               stream));
  }

  void normalize_image(const uint8_t* rgb, int64_t count, float* out) {
    cuda::normalize_image(rgb, count, out, stream);
  }
  void gaussian_resize(const float* in, int in_h, int in_w, int channels, const ResizePlan& rows,
                       const ResizePlan& cols, float* tmp, float* out) {
    cuda::gaussian_resize(in, in_h, in_w, channels, uploaded(rows), uploaded(cols), tmp, out,
                          stream);
  }
  void extract_patches(const float* image, int h, int w, int patch, int count_h, int count_w,
                       int pad_top, int pad_left, float* out) {
    cuda::extract_patches(image, h, w, patch, count_h, count_w, pad_top, pad_left, out, stream);
  }

  // Under bf16 the columns' floats hold the bfloat16 columns (half their bytes); a pointwise
  // shape, given none, rounds its input into bf16_input.
  void conv2d(const float* in, const Conv2dShape& shape, const float* kernel, float* columns,
              float* out, Precision p) {
    if (p != Precision::kBf16)
      return cuda::conv2d(in, shape, kernel, columns, out, gemm, stream, p);
    __nv_bfloat16* bf16_columns = columns ? reinterpret_cast<__nv_bfloat16*>(columns) : bf16_input;
    cuda::conv2d_bf16(in, shape, bf16_kernel(kernel), bf16_columns, out, gemm, stream);
  }
  void group_norm(float* x, int n, int hw, int c, int groups, const float* scale,
                  const float* bias, float eps, bool relu) {
    cuda::group_norm(x, n, hw, c, groups, scale, bias, eps, relu, stream);
  }
  void max_pool_3x3_s2(const float* in, int n, int h, int w, int c, int out_h, int out_w,
                       float* out) {
    cuda::max_pool_3x3_s2(in, n, h, w, c, out_h, out_w, out, stream);
  }
  void add_relu(float* x, const float* residual, int64_t count) {
    cuda::add_relu(x, residual, count, stream);
  }
  void linear(const float* a, int64_t m, int k, const float* b, int n, const float* bias,
              Epilogue epilogue, float* out, Precision p) {
    if (p != Precision::kBf16)
      return cuda::linear(a, m, k, b, n, bias, epilogue, out, gemm, stream, p);
    cuda::linear_bf16(a, m, k, bf16_kernel(b), n, bias, epilogue, out, bf16_input, gemm, stream);
  }
  void layer_norm(const float* x, int64_t rows, int dim, const float* scale, const float* bias,
                  float eps, float* out) {
    cuda::layer_norm(x, rows, dim, scale, bias, eps, out, stream);
  }
  void add_embeddings(float* x, int64_t rows, int dim, const int32_t* spatial,
                      const int32_t* scale_id, const float* pos_table, const float* scale_table) {
    cuda::add_embeddings(x, rows, dim, spatial, scale_id, pos_table, scale_table, stream);
  }
  void attention(const float* qkv, const PackedBatch& batch, int heads, int head_dim,
                 Queries queries, float* out, Precision p) {
    cuda::attention(qkv, batch.device_starts, batch.batch(), batch.longest(), heads, head_dim,
                    queries, attention_scratch, out, stream, p);
  }
  void head_scores(const float* logits, int images, int classes, float* scores) {
    cuda::head_score(logits, images, classes, scores, stream);
  }

 private:
  const __nv_bfloat16* bf16_kernel(const float* kernel) const {
    const auto found = bf16_kernels.find(kernel);
    if (found == bf16_kernels.end()) throw Error("GPU: a kernel has no bfloat16 copy");
    return found->second;
  }
  cuda::DeviceResizePlan uploaded(const ResizePlan& plan) const {
    for (const UploadedResizePlan& p : resize_plans)
      if (p.host == &plan) return p.device;
    throw Error("GPU: a resize plan was not uploaded before its resize");
  }
};

// Host bytes gathered into the pinned staging buffer, then copied to the device in groups,
// each when the stream needs it (a group's copies go out in the order they were added). A
// piece whose destination continues the previous piece's, in the same group, joins its
// copy: the per-image index arrays of a batch, added array by array, go out as one copy
// each.
class Uploads {
 public:
  void add(void* dst, const void* src, size_t bytes) {
    if (bytes == 0) return;
    if (copies_.size() > group_start_ && copies_.back().end() == dst) {
      pieces_.push_back({src, bytes, total_});
      copies_.back().bytes += bytes;
      total_ += bytes;
      return;
    }
    total_ = (total_ + kStagingAlign - 1) / kStagingAlign * kStagingAlign;
    pieces_.push_back({src, bytes, total_});
    copies_.push_back({dst, bytes, total_});
    total_ += bytes;
  }
  // Ends a group; returns how many copies there are so far (none of them grows later).
  size_t end_group() {
    group_start_ = copies_.size();
    return group_start_;
  }
  size_t total_bytes() const { return total_; }
  // Copies every source into `staging` (total_bytes() long), while no copy is in flight.
  void fill(unsigned char* staging) const {
    for (const Piece& p : pieces_) std::memcpy(staging + p.at, p.src, p.bytes);
  }
  // Enqueues copies [from, to) from `staging` to their destinations.
  void send(const unsigned char* staging, size_t from, size_t to, cudaStream_t stream) const {
    for (size_t k = from; k < to; ++k)
      CUDA_CHECK(cudaMemcpyAsync(copies_[k].dst, staging + copies_[k].at, copies_[k].bytes,
                                 cudaMemcpyHostToDevice, stream));
  }

 private:
  struct Piece {
    const void* src;
    size_t bytes, at;
  };
  struct Copy {
    void* dst;
    size_t bytes, at;
    const void* end() const { return static_cast<const unsigned char*>(dst) + bytes; }
  };
  std::vector<Piece> pieces_;
  std::vector<Copy> copies_;
  size_t total_ = 0, group_start_ = 0;
};

// A decoded image's resize plans in one array of starts and one of weights, for one upload
// to `device_starts` and `device_weights`; `uploaded` says where each plan lands there.
struct PackedPlans {
  std::vector<int32_t> starts;
  std::vector<float> weights;
  std::vector<UploadedResizePlan> uploaded;
};

PackedPlans pack_plans(const TokenPlan& plan, const int32_t* device_starts,
                       const float* device_weights) {
  PackedPlans p;
  for (const ScalePlan& scale : plan.scales) {
    if (!scale.resized) continue;
    for (const ResizePlan* axis : {&scale.rows, &scale.cols}) {
      p.uploaded.push_back({axis, {axis->in_size, axis->out_size, axis->span,
                                   device_starts + p.starts.size(),
                                   device_weights + p.weights.size()}});
      p.starts.insert(p.starts.end(), axis->starts.begin(), axis->starts.end());
      p.weights.insert(p.weights.end(), axis->weights.begin(), axis->weights.end());
    }
  }
  return p;
}

}  // namespace

struct GpuModel::Impl {
  ModelConfig config;
  Precision precision = Precision::kFp32;
  int device = 0;
  cudaStream_t stream = nullptr;
  DeviceArray<unsigned char> gemm_workspace;
  std::unique_ptr<cuda::GemmContext> gemm;  // its plans are kept across calls
  DeviceArray<float> weights;
  WeightPointers params;  // into `weights`
  DeviceArray<__nv_bfloat16> bf16_weights;  // under bf16: the kernels' copies
  Bf16Kernels bf16_kernels;                 // into `bf16_weights`

  DeviceArray<float> workspace;  // per batch, engine/model/workspace.h's layout
  DeviceArray<float> attention_scratch;  // per batch, cuda::attention_scratch_floats
  PinnedBuffer staging;
  ForwardGraphs graphs;  // captured over `workspace` and `attention_scratch`: cleared as they move

  // Device preprocessing of one decoded image at a time: the bytes, write_token_patches's
  // scratch, and the resize plans. Grown to the largest image seen.
  DeviceArray<uint8_t> rgb;
  DeviceArray<float> normalized, resize_tmp, resized, scale_patches, plan_weights;
  DeviceArray<int32_t> plan_starts;

  // Stage boundaries of the last call, on the stream.
  cudaEvent_t started = nullptr, uploaded = nullptr, preprocessed = nullptr, done = nullptr;
  GpuRunStats last_run;

  ~Impl() {
    for (cudaEvent_t e : {started, uploaded, preprocessed, done})
      if (e) cudaEventDestroy(e);
    if (stream) cudaStreamDestroy(stream);
  }

  void round_kernels();
  Workspace ensure_workspace(const PackedBatch& batch);
  void grow_preprocessing(const Image& image, const TokenPlan& plan);
  TokenScratch token_scratch() const {
    return {normalized.get(), resize_tmp.get(), resized.get(), scale_patches.get()};
  }
};

Workspace GpuModel::Impl::ensure_workspace(const PackedBatch& batch) {
  // One image per offset pair: batch.images is filled only after the preprocessing.
  const int images = static_cast<int>(batch.starts.size()) - 1;
  const WorkspaceLayout layout(config, {batch.rows(), images, CudaOps::kStemChunk, true, true,
                                        precision == Precision::kBf16});
  const size_t total = size_t(layout.total_floats());
  const float* const before[] = {workspace.get(), attention_scratch.get()};
  if (workspace.size() < total) {
    workspace.reset();  // free the old one first: the new one may need that memory
    try {
      workspace.allocate(total, "the batch workspace");
    } catch (const Error& e) {
      throw Error("GPU out of memory: scoring " + std::to_string(images) +
                  " image(s) of " + std::to_string(batch.rows()) + " tokens in all needs " +
                  mib(double(total) * sizeof(float)) + " of device workspace besides the " +
                  mib(double(weights.size()) * sizeof(float)) + " of weights (" + e.what() +
                  ")");
    }
  }
  grow(attention_scratch, size_t(cuda::attention_scratch_floats(images, config.num_heads)),
       "the attention scratch");
  if (before[0] != workspace.get() || before[1] != attention_scratch.get()) graphs.clear();
  return layout.at(workspace.get());
}

void GpuModel::Impl::round_kernels() {
  constexpr int64_t kAlign = 128;  // 256 bytes, as the float32 block's parameters
  const auto kernels = [&](auto&& f) {
    for_each_param(params, config, [&](const float*& p, const ParamField& field) {
      if (field.kind != ParamKind::kValues && p != params.head_kernel)
        f(p, element_count(field.shape));
    });
  };
  int64_t total = 0;
  kernels([&](const float*, int64_t count) { total += (count + kAlign - 1) / kAlign * kAlign; });
  bf16_weights.allocate(size_t(total), "the bfloat16 kernels");
  int64_t at = 0;
  kernels([&](const float* p, int64_t count) {
    cuda::round_to_bf16(p, count, bf16_weights.get() + at, stream);
    bf16_kernels.emplace(p, bf16_weights.get() + at);
    at += (count + kAlign - 1) / kAlign * kAlign;
  });
}

void GpuModel::Impl::grow_preprocessing(const Image& image, const TokenPlan& plan) {
  const TokenScratchSizes sizes =
      token_scratch_sizes(image.height, image.width, plan, config.patch_size);
  size_t starts = 0, weights_count = 0;
  for (const ScalePlan& scale : plan.scales) {
    starts += scale.rows.starts.size() + scale.cols.starts.size();
    weights_count += scale.rows.weights.size() + scale.cols.weights.size();
  }
  grow(rgb, image.rgb.size(), "the decoded image");
  grow(normalized, size_t(sizes.normalized), "the normalized image");
  grow(resize_tmp, size_t(sizes.resize_tmp), "the resize intermediate");
  grow(resized, size_t(sizes.resized), "the resized image");
  grow(scale_patches, size_t(sizes.scale_patches), "one scale's patches");
  grow(plan_starts, starts, "the resize plans");
  grow(plan_weights, weights_count, "the resize plans");
}

GpuModel::GpuModel(const ModelWeights& w, Precision precision) : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.config = w.config;
  m.precision = precision;
  if (m.config.head_dim() != 64)
    throw Error("GPU: head_dim " + std::to_string(m.config.head_dim()) +
                " is not supported by the attention kernel (64 only); use --device cpu");
  CUDA_CHECK(cudaSetDevice(m.device));
  CUDA_CHECK(cudaStreamCreateWithFlags(&m.stream, cudaStreamNonBlocking));
  for (cudaEvent_t* e : {&m.started, &m.uploaded, &m.preprocessed, &m.done})
    CUDA_CHECK(cudaEventCreate(e));
  m.gemm_workspace.allocate(cuda::kBlasWorkspaceBytes, "the GEMM workspace");
  m.gemm = std::make_unique<cuda::GemmContext>(m.gemm_workspace.get(), cuda::kBlasWorkspaceBytes);
  // The weights in one copy, on the work stream.
  m.weights.allocate(w.block.size(), "the model weights");
  CUDA_CHECK(cudaMemcpyAsync(m.weights.get(), w.block.data(), w.block.size() * sizeof(float),
                             cudaMemcpyHostToDevice, m.stream));
  m.params = w.at(m.weights.get());
  if (precision == Precision::kBf16) m.round_kernels();
  CUDA_CHECK(cudaStreamSynchronize(m.stream));
}

GpuModel::~GpuModel() = default;

const ModelConfig& GpuModel::config() const { return impl_->config; }

std::vector<float> GpuModel::score_batch(std::span<const GpuInput> images) {
  Impl& m = *impl_;
  const ModelConfig& c = m.config;
  if (images.empty()) return {};
  // Host side first: each image's plan and token count, every byte to upload.
  std::vector<TokenPlan> plans(images.size());
  std::vector<int64_t> counts;
  CUDA_CHECK(cudaSetDevice(m.device));  // the calling thread may not be the constructing one
  for (size_t i = 0; i < images.size(); ++i) {
    if (const Tokens* const* t = std::get_if<const Tokens*>(&images[i])) {
      const Tokens& tokens = **t;
      if (tokens.patch_values != c.patch_values() ||
          int64_t(tokens.patches.size()) != tokens.count() * c.patch_values() ||
          int64_t(tokens.scale_id.size()) != tokens.count())
        throw Error("GpuModel: tokens do not match the model's patch size");
      counts.push_back(tokens.count());
    } else {
      const Image& image = *std::get<const Image*>(images[i]);
      check_image(image);
      plans[i] = plan_tokens(image.height, image.width, c);
      counts.push_back(plans[i].count());
      m.grow_preprocessing(image, plans[i]);  // before any pointer into them is taken
    }
  }
  PackedBatch batch;
  batch.starts = sequence_starts(counts);
  const Workspace ws = m.ensure_workspace(batch);
  batch.device_starts = ws.starts;

  // Every host byte into one staging buffer: the offsets, every image's indices and tokens
  // (sent at once, array by array, so that each array is one copy), then each decoded
  // image's bytes and plans (sent before its kernels).
  Uploads up;
  up.add(ws.starts, batch.starts.data(), batch.starts.size() * sizeof(int64_t));
  const auto first_token = [&](size_t i) { return batch.starts[i] - int64_t(i); };
  const auto tokens_of = [&](size_t i) { return std::get_if<const Tokens*>(&images[i]); };
  for (size_t i = 0; i < images.size(); ++i) {
    const std::vector<int32_t>& spatial =
        tokens_of(i) ? (*tokens_of(i))->spatial : plans[i].spatial;
    up.add(ws.spatial + first_token(i), spatial.data(), spatial.size() * sizeof(int32_t));
  }
  for (size_t i = 0; i < images.size(); ++i) {
    const std::vector<int32_t>& scale_id =
        tokens_of(i) ? (*tokens_of(i))->scale_id : plans[i].scale_id;
    up.add(ws.scale_id + first_token(i), scale_id.data(), scale_id.size() * sizeof(int32_t));
  }
  for (size_t i = 0; i < images.size(); ++i)
    if (const Tokens* const* t = tokens_of(i))
      up.add(ws.patches + first_token(i) * c.patch_values(), (*t)->patches.data(),
             (*t)->patches.size() * sizeof(float));
  const size_t inputs_end = up.end_group();
  std::vector<PackedPlans> packed(images.size());
  std::vector<size_t> group_end(images.size());
  for (size_t i = 0; i < images.size(); ++i) {
    if (const Image* const* image = std::get_if<const Image*>(&images[i])) {
      packed[i] = pack_plans(plans[i], m.plan_starts.get(), m.plan_weights.get());
      up.add(m.rgb.get(), (*image)->rgb.data(), (*image)->rgb.size());
      up.add(m.plan_starts.get(), packed[i].starts.data(), packed[i].starts.size() * sizeof(int32_t));
      up.add(m.plan_weights.get(), packed[i].weights.data(), packed[i].weights.size() * sizeof(float));
    }
    group_end[i] = up.end_group();
  }
  // No copy of an earlier call that failed half-way may still be reading the staging buffer.
  CUDA_CHECK(cudaStreamSynchronize(m.stream));
  m.staging.ensure(std::max<size_t>(up.total_bytes(), 1));
  up.fill(m.staging.get());

  CUDA_CHECK(cudaEventRecord(m.started, m.stream));
  {
    NvtxRange range("upload");
    up.send(m.staging.get(), 0, inputs_end, m.stream);
    CUDA_CHECK(cudaEventRecord(m.uploaded, m.stream));
  }
  CudaOps ops{m.gemm.get(), m.stream,       m.attention_scratch.get(),
              m.precision,  m.bf16_kernels, reinterpret_cast<__nv_bfloat16*>(ws.bf16_input)};
  {
    NvtxRange range("preprocess");
    size_t sent = inputs_end;
    for (size_t i = 0; i < images.size(); ++i) {
      const Image* const* image = std::get_if<const Image*>(&images[i]);
      if (!image) continue;
      // The shared image buffers are reused image after image, in stream order.
      up.send(m.staging.get(), sent, group_end[i], m.stream);
      sent = group_end[i];
      ops.resize_plans = packed[i].uploaded;
      write_token_patches(ops, m.rgb.get(), (*image)->height, (*image)->width, plans[i],
                          c.patch_size, m.token_scratch(),
                          ws.patches + (batch.starts[i] - int64_t(i)) * c.patch_values());
    }
    ops.resize_plans = {};
    CUDA_CHECK(cudaEventRecord(m.preprocessed, m.stream));
  }
  for (size_t i = 0; i < images.size(); ++i) {
    const int64_t first = batch.starts[i] - int64_t(i);
    batch.images.push_back({ws.patches + first * c.patch_values(), ws.spatial + first,
                            ws.scale_id + first, counts[i]});
  }
  m.last_run.graph =
      m.graphs.run(batch.starts, m.stream, [&] { forward(ops, c, m.params, ws, batch); });
  CUDA_CHECK(cudaEventRecord(m.done, m.stream));
  std::vector<float> scores(images.size());
  // A pageable destination: the copy is synchronous with the stream's work before it.
  CUDA_CHECK(cudaMemcpyAsync(scores.data(), ws.scores, scores.size() * sizeof(float),
                             cudaMemcpyDeviceToHost, m.stream));
  CUDA_CHECK(cudaStreamSynchronize(m.stream));  // also surfaces faults inside any kernel above
  m.last_run.tokens.clear();
  for (int64_t n : counts) m.last_run.tokens.push_back(n + 1);
  m.last_run.upload_ms = elapsed_ms(m.started, m.uploaded);
  m.last_run.preprocess_ms = elapsed_ms(m.uploaded, m.preprocessed);
  m.last_run.model_ms = elapsed_ms(m.preprocessed, m.done);
  return scores;
}

float GpuModel::score(const Tokens& tokens) {
  const GpuInput one[] = {&tokens};
  return score_batch(one)[0];
}

float GpuModel::score_image(const Image& image) {
  const GpuInput one[] = {&image};
  return score_batch(one)[0];
}

GpuRunStats GpuModel::last_run_stats() const { return impl_->last_run; }

}  // namespace musiq
