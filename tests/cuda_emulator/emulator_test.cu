// The emulator's own rules, each shown to hold and, where the rule is a check, to fire:
// barriers and warp collectives in every thread order, the broken rules a strict run
// aborts on (death tests, each in a fresh process), launch errors as a GPU returns them,
// the stream ordering and copy semantics that make a missing synchronisation visible, and
// cuBLAS's and cuBLASLt's checks, the work counts, and graphs captured from a stream. Built only with
// -DMUSIQ_CUDA_EMULATION=ON.
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <vector>

#include "tests/cuda_emulator/emulator.h"
#include "tests/cuda_emulator/test_memory.h"

namespace {

using cuda_emulator_test::device_array;
using cuda_emulator_test::download;

// Runs `body` in a child process with the emulator's thread order set (settings are read
// once per process) and exits 0 when it returns true.
#define EXPECT_TRUE_IN_ORDER(order, body)             \
  EXPECT_EXIT(                                         \
      {                                                \
        setenv("MUSIQ_CUDA_EMULATOR_ORDER", order, 1); \
        std::exit((body) ? 0 : 1);                     \
      },                                               \
      ::testing::ExitedWithCode(0), "")

__global__ void block_sum_kernel(const int* in, int* out) {
  extern __shared__ int partial[];
  const int t = threadIdx.x;
  partial[t] = in[blockIdx.x * blockDim.x + t];
  __syncthreads();
  for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
    if (t < stride) partial[t] += partial[t + stride];
    __syncthreads();
  }
  if (t == 0) out[blockIdx.x] = partial[0];
}

bool block_sums_are_right() {
  const int blocks = 37, threads = 256;
  std::vector<int> in(blocks * threads);
  for (size_t i = 0; i < in.size(); ++i) in[i] = static_cast<int>(i % 1000) - 300;
  int* d_in = device_array<int>(in.size());
  int* d_out = device_array<int>(blocks);
  cudaMemcpy(d_in, in.data(), in.size() * sizeof(int), cudaMemcpyHostToDevice);
  block_sum_kernel<<<blocks, threads, threads * sizeof(int)>>>(d_in, d_out);
  const std::vector<int> out = download(d_out, blocks);
  for (int b = 0; b < blocks; ++b) {
    int expected = 0;
    for (int t = 0; t < threads; ++t) expected += in[b * threads + t];
    if (out[b] != expected) return false;
  }
  return true;
}

TEST(CudaEmulator, BarrierReductionInEveryOrder) {
  EXPECT_TRUE_IN_ORDER("forward", block_sums_are_right());
  EXPECT_TRUE_IN_ORDER("reverse", block_sums_are_right());
  EXPECT_TRUE_IN_ORDER("random:7", block_sums_are_right());
}

// Each thread reads its right neighbour's value without a barrier in between.
__global__ void neighbour_without_barrier_kernel(int* out) {
  __shared__ int value[64];
  value[threadIdx.x] = static_cast<int>(threadIdx.x);
  out[threadIdx.x] = value[(threadIdx.x + 1) % 64];
}

bool neighbours_read_right() {
  int* d_out = device_array<int>(64);
  neighbour_without_barrier_kernel<<<1, 64>>>(d_out);
  const std::vector<int> out = download(d_out, 64);
  for (int t = 0; t < 64; ++t)
    if (out[t] != (t + 1) % 64) return false;
  return true;
}

// In forward order a thread runs to its end before its neighbour starts: the missing
// barrier shows as poisoned reads every time, never as a lucky pass.
TEST(CudaEmulator, MissingBarrierReadsPoisonInForwardOrder) {
  EXPECT_EXIT(
      {
        setenv("MUSIQ_CUDA_EMULATOR_ORDER", "forward", 1);
        std::exit(neighbours_read_right() ? 0 : 1);
      },
      ::testing::ExitedWithCode(1), "");
}

__global__ void warp_ops_kernel(const int* in, int* out) {
  const int lane = threadIdx.x % 32;
  int v = in[threadIdx.x];
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xFFFFFFFFu, v, offset);
  out[threadIdx.x * 6 + 0] = v;                                                  // warp sum
  out[threadIdx.x * 6 + 1] = __shfl_sync(0xFFFFFFFFu, in[threadIdx.x], 5);        // lane 5
  out[threadIdx.x * 6 + 2] = __shfl_up_sync(0xFFFFFFFFu, in[threadIdx.x], 3);     // lane - 3
  out[threadIdx.x * 6 + 3] = __shfl_down_sync(0xFFFFFFFFu, in[threadIdx.x], 2, 8);
  out[threadIdx.x * 6 + 4] = static_cast<int>(__ballot_sync(0xFFFFFFFFu, in[threadIdx.x] > 0));
  // Two halves of the warp, each with its own mask.
  const unsigned half = lane < 16 ? 0x0000FFFFu : 0xFFFF0000u;
  out[threadIdx.x * 6 + 5] = __shfl_xor_sync(half, in[threadIdx.x], 1);
}

bool warp_ops_are_right() {
  const int n = 64;
  std::vector<int> in(n);
  for (int i = 0; i < n; ++i) in[i] = (i * 7) % 11 - 5;
  int* d_in = device_array<int>(n);
  int* d_out = device_array<int>(n * 6);
  cudaMemcpy(d_in, in.data(), n * sizeof(int), cudaMemcpyHostToDevice);
  warp_ops_kernel<<<1, n>>>(d_in, d_out);
  const std::vector<int> out = download(d_out, n * 6);
  for (int t = 0; t < n; ++t) {
    const int w = t / 32 * 32, lane = t % 32;
    int sum = 0;
    unsigned ballot = 0;
    for (int l = 0; l < 32; ++l) {
      sum += in[w + l];
      if (in[w + l] > 0) ballot |= 1u << l;
    }
    const int up = lane >= 3 ? in[t - 3] : in[t];
    const int down = lane % 8 + 2 < 8 ? in[t + 2] : in[t];
    const int* o = &out[t * 6];
    if (o[0] != sum || o[1] != in[w + 5] || o[2] != up || o[3] != down ||
        static_cast<unsigned>(o[4]) != ballot || o[5] != in[w + (lane ^ 1)])
      return false;
  }
  return true;
}

TEST(CudaEmulator, WarpCollectivesInEveryOrder) {
  EXPECT_TRUE_IN_ORDER("forward", warp_ops_are_right());
  EXPECT_TRUE_IN_ORDER("reverse", warp_ops_are_right());
  EXPECT_TRUE_IN_ORDER("random:3", warp_ops_are_right());
}

__global__ void early_exit_kernel(int* out) {
  if (threadIdx.x == 3) return;
  __syncthreads();
  out[threadIdx.x] = 1;
}

__global__ void exited_lane_kernel(int* out) {
  if (threadIdx.x == 31) return;
  out[threadIdx.x] = __shfl_xor_sync(0xFFFFFFFFu, static_cast<int>(threadIdx.x), 1);
}

__global__ void disagreeing_masks_kernel(int* out) {
  const unsigned mask = threadIdx.x < 16 ? 0xFFFFFFFFu : 0xFFFF0000u;
  out[threadIdx.x] = __shfl_xor_sync(mask, static_cast<int>(threadIdx.x), 1);
}

__global__ void deadlock_kernel(int* out) {
  if (threadIdx.x == 0) out[0] = __shfl_sync(0x3u, 1, 1);
  else __syncthreads();
}

__global__ void past_shared_kernel(int* out) {
  extern __shared__ int shared[];
  shared[threadIdx.x + 1] = 1;  // one element too far for the last thread
  out[threadIdx.x] = 0;
}

__global__ void store_kernel(int* out) { out[threadIdx.x] = 1; }

TEST(CudaEmulatorDeathTest, BrokenRulesAbortWithAReport) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        early_exit_kernel<<<1, 32>>>(device_array<int>(32));
        cudaDeviceSynchronize();
      },
      "exited while [0-9]+ other threads wait at __syncthreads|reached __syncthreads after");
  EXPECT_DEATH(
      {
        exited_lane_kernel<<<1, 32>>>(device_array<int>(32));
        cudaDeviceSynchronize();
      },
      "exited lanes 0x80000000|exited while lanes");
  EXPECT_DEATH(
      {
        disagreeing_masks_kernel<<<1, 32>>>(device_array<int>(32));
        cudaDeviceSynchronize();
      },
      // Which report comes first depends on the thread order: the upper lanes may meet
      // alone and leave before the lower ones wait for them.
      "the lanes disagree|exited while lanes 0x[0-9a-f]+ wait|names exited lanes");
  EXPECT_DEATH(
      {
        deadlock_kernel<<<1, 32>>>(device_array<int>(32));
        cudaDeviceSynchronize();
      },
      "deadlock in block \\(0, 0, 0\\).*__shfl\\*_sync mask 0x3.*__syncthreads");
  EXPECT_DEATH(
      {
        past_shared_kernel<<<1, 32, 32 * sizeof(int)>>>(device_array<int>(32));
        cudaDeviceSynchronize();
      },
      "wrote past the end of its 128 bytes of dynamic shared memory|"
      "AddressSanitizer");
  EXPECT_DEATH(
      {
        std::vector<int> host(32);
        store_kernel<<<1, 32>>>(host.data());
      },
      "neither device nor pinned host memory");
  EXPECT_DEATH(
      {
        std::vector<int> host(33);
        cudaMemcpy(device_array<int>(32), host.data(), 33 * sizeof(int), cudaMemcpyHostToDevice);
      },
      "cudaMemcpy: 132 bytes at 0x[0-9a-f]+ runs 4 bytes past the end of its 128-byte");
}

#ifdef __SANITIZE_ADDRESS__
__global__ void read_past_kernel(const int* in, int* out) { out[threadIdx.x] = in[threadIdx.x + 1]; }

// Device memory is host memory with AddressSanitizer's redzones around it, and the kernels
// are instrumented (the emulator's own code is not): a kernel that reads one element past
// its buffer is a report.
TEST(CudaEmulatorDeathTest, ReadPastADeviceBufferIsASanitizerReport) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        read_past_kernel<<<1, 32>>>(device_array<int>(32), device_array<int>(32));
        cudaDeviceSynchronize();
      },
      "AddressSanitizer: heap-buffer-overflow");
}
#endif

__global__ void big_shared_kernel(int* out) {
  extern __shared__ int shared[];
  shared[threadIdx.x] = 2;
  out[threadIdx.x] = shared[threadIdx.x];
}

TEST(CudaEmulator, LaunchErrorsAsAGpuReturnsThem) {
  int* out = device_array<int>(1024);
  const size_t big = 64 * 1024;
  big_shared_kernel<<<1, 32, big>>>(out);
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidValue);  // past 48 KB without the attribute
  ASSERT_EQ(cudaFuncSetAttribute(big_shared_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                 static_cast<int>(big)),
            cudaSuccess);
  big_shared_kernel<<<1, 32, big>>>(out);
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);
  EXPECT_EQ(download(out, 32), std::vector<int>(32, 2));
  store_kernel<<<1, 1025>>>(out);
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidConfiguration);
  store_kernel<<<dim3(1, 65536), 1>>>(out);
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidConfiguration);
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);  // read and cleared
}

TEST(CudaEmulator, NewDeviceMemoryIsNaN) {
  float* p = device_array<float>(100);
  for (float v : download(p, 100)) EXPECT_TRUE(std::isnan(v));
}

__global__ void fill_kernel(float* out, float value, int n) {
  for (int i = threadIdx.x; i < n; i += blockDim.x) out[i] = value;
}

// A stream's capture becomes a graph: nothing runs while capturing; each launch runs the
// captured work, its copies reading pinned memory as it is at the launch, and counts as one
// graph. A call that allocates or synchronizes during the capture is refused and breaks it.
TEST(CudaEmulator, GraphReplaysCapturedWork) {
  const int n = 256;
  float* copied = device_array<float>(n);
  float* filled = device_array<float>(n);
  float* pinned = nullptr;
  ASSERT_EQ(cudaHostAlloc(reinterpret_cast<void**>(&pinned), n * sizeof(float), 0), cudaSuccess);
  std::fill(pinned, pinned + n, 1.0f);
  cudaStream_t stream;
  ASSERT_EQ(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), cudaSuccess);

  ASSERT_EQ(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), cudaSuccess);
  cudaStreamCaptureStatus status;
  ASSERT_EQ(cudaStreamIsCapturing(stream, &status), cudaSuccess);
  EXPECT_EQ(status, cudaStreamCaptureStatusActive);
  ASSERT_EQ(cudaMemcpyAsync(copied, pinned, n * sizeof(float), cudaMemcpyHostToDevice, stream),
            cudaSuccess);
  const cuda_emulator::WorkCounts before_capture = cuda_emulator::work_counts();
  fill_kernel<<<1, 128, 0, stream>>>(filled, 5.0f, n);
  EXPECT_EQ(cuda_emulator::work_counts().kernels, before_capture.kernels + 1);
  cudaGraph_t graph = nullptr;
  ASSERT_EQ(cudaStreamEndCapture(stream, &graph), cudaSuccess);
  cudaGraphExec_t exec = nullptr;
  ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
  ASSERT_EQ(cudaGraphDestroy(graph), cudaSuccess);
  ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
  EXPECT_TRUE(std::isnan(download(filled, n)[0]));  // captured, not run

  for (const float value : {2.0f, 3.0f}) {
    std::fill(pinned, pinned + n, value);
    const cuda_emulator::WorkCounts before = cuda_emulator::work_counts();
    ASSERT_EQ(cudaGraphLaunch(exec, stream), cudaSuccess);
    const cuda_emulator::WorkCounts after = cuda_emulator::work_counts();
    EXPECT_EQ(after.graphs, before.graphs + 1);
    EXPECT_EQ(after.total(), before.total() + 1);
    ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
    EXPECT_EQ(download(copied, n)[n - 1], value);
    EXPECT_EQ(download(filled, n)[n - 1], 5.0f);
  }
  ASSERT_EQ(cudaGraphExecDestroy(exec), cudaSuccess);

  // Refused while capturing, and the capture is lost: an allocation, a synchronization, a
  // copy from pageable memory (a graph would read it after the call returned).
  std::vector<float> pageable(n, 4.0f);
  const auto refused = [&](const std::function<cudaError_t()>& call) {
    EXPECT_EQ(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal), cudaSuccess);
    const cudaError_t during = call();
    cudaGraph_t lost = nullptr;
    const cudaError_t end = cudaStreamEndCapture(stream, &lost);
    cudaGetLastError();
    return during == cudaErrorStreamCaptureUnsupported &&
           end == cudaErrorStreamCaptureInvalidated && lost == nullptr;
  };
  void* more = nullptr;
  EXPECT_TRUE(refused([&] { return cudaMalloc(&more, 64); }));
  EXPECT_TRUE(refused([&] { return cudaStreamSynchronize(stream); }));
  EXPECT_TRUE(refused([&] { return cudaDeviceSynchronize(); }));
  EXPECT_TRUE(refused([&] {
    return cudaMemcpyAsync(copied, pageable.data(), n * sizeof(float), cudaMemcpyHostToDevice,
                           stream);
  }));
  EXPECT_EQ(cudaStreamBeginCapture(nullptr, cudaStreamCaptureModeGlobal),
            cudaErrorStreamCaptureUnsupported);  // the legacy stream cannot capture
  cudaGetLastError();

  cudaStreamDestroy(stream);
  cudaFreeHost(pinned);
  cudaFree(filled);
  cudaFree(copied);
}

// Work on a non-blocking stream is ordered with nothing on the legacy stream: a cudaMemcpy
// that forgets the stream's synchronisation reads what was there before, every time.
TEST(CudaEmulator, StreamOrderingMakesAMissingSyncVisible) {
  const int n = 1000;
  float* p = device_array<float>(n);
  cudaStream_t non_blocking, blocking;
  ASSERT_EQ(cudaStreamCreateWithFlags(&non_blocking, cudaStreamNonBlocking), cudaSuccess);
  ASSERT_EQ(cudaStreamCreate(&blocking), cudaSuccess);

  fill_kernel<<<1, 128, 0, non_blocking>>>(p, 1.0f, n);
  EXPECT_TRUE(std::isnan(download(p, n)[0]));  // not ordered with the legacy stream
  ASSERT_EQ(cudaStreamSynchronize(non_blocking), cudaSuccess);
  EXPECT_EQ(download(p, n)[n - 1], 1.0f);

  fill_kernel<<<1, 128, 0, blocking>>>(p, 2.0f, n);
  EXPECT_EQ(download(p, n)[0], 2.0f);  // the legacy stream waits for blocking streams

  // An event orders two non-blocking streams.
  cudaStream_t other;
  cudaEvent_t filled;
  ASSERT_EQ(cudaStreamCreateWithFlags(&other, cudaStreamNonBlocking), cudaSuccess);
  ASSERT_EQ(cudaEventCreate(&filled), cudaSuccess);
  fill_kernel<<<1, 128, 0, non_blocking>>>(p, 3.0f, n);
  ASSERT_EQ(cudaEventRecord(filled, non_blocking), cudaSuccess);
  ASSERT_EQ(cudaStreamWaitEvent(other, filled, 0), cudaSuccess);
  std::vector<float> host(n, 0.0f);
  ASSERT_EQ(cudaMemcpyAsync(host.data(), p, n * sizeof(float), cudaMemcpyDeviceToHost, other),
            cudaSuccess);  // to pageable memory: returns once done
  EXPECT_EQ(host[0], 3.0f);

  // To pinned memory an async copy is only queued.
  float* pinned = nullptr;
  ASSERT_EQ(cudaHostAlloc(reinterpret_cast<void**>(&pinned), n * sizeof(float), 0), cudaSuccess);
  pinned[0] = -1.0f;
  ASSERT_EQ(cudaMemcpyAsync(pinned, p, n * sizeof(float), cudaMemcpyDeviceToHost, other),
            cudaSuccess);
  EXPECT_EQ(pinned[0], -1.0f);
  ASSERT_EQ(cudaStreamSynchronize(other), cudaSuccess);
  EXPECT_EQ(pinned[0], 3.0f);
  cudaFreeHost(pinned);
  cudaEventDestroy(filled);
  cudaStreamDestroy(other);
  cudaStreamDestroy(blocking);
  cudaStreamDestroy(non_blocking);
  cudaFree(p);
}

TEST(CudaEmulator, CublasSgemmChecksAndComputes) {
  const int m = 3, n = 4, k = 5;
  std::vector<float> a(m * k), b(k * n);
  for (int i = 0; i < m * k; ++i) a[i] = 1.0f + 1e-3f * float(i) + 3e-4f;  // below TF32's step
  for (int i = 0; i < k * n; ++i) b[i] = 0.5f - 0.125f * float(i % 7);
  float* d_a = device_array<float>(a.size());
  float* d_b = device_array<float>(b.size());
  float* d_c = device_array<float>(m * n);
  cudaMemcpy(d_a, a.data(), a.size() * sizeof(float), cudaMemcpyHostToDevice);
  cudaMemcpy(d_b, b.data(), b.size() * sizeof(float), cudaMemcpyHostToDevice);
  cublasHandle_t blas;
  ASSERT_EQ(cublasCreate(&blas), CUBLAS_STATUS_SUCCESS);
  const float one = 1.0f, zero = 0.0f;
  // Column-major C[m, n] = A[m, k] B[k, n].
  EXPECT_EQ(cublasSgemm(blas, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &one, d_a, m - 1, d_b, k, &zero,
                        d_c, m),
            CUBLAS_STATUS_INVALID_VALUE);  // lda < m
  ASSERT_EQ(cublasSgemm(blas, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &one, d_a, m, d_b, k, &zero, d_c,
                        m),
            CUBLAS_STATUS_SUCCESS);
  const std::vector<float> c = download(d_c, m * n);
  ASSERT_EQ(cublasSetMathMode(blas, CUBLAS_TF32_TENSOR_OP_MATH), CUBLAS_STATUS_SUCCESS);
  ASSERT_EQ(cublasSgemm(blas, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &one, d_a, m, d_b, k, &zero, d_c,
                        m),
            CUBLAS_STATUS_SUCCESS);
  const std::vector<float> c_tf32 = download(d_c, m * n);
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) {
      double exact = 0, tf32 = 0;
      for (int p = 0; p < k; ++p) {
        exact += double(a[p * m + i]) * b[j * k + p];
        // TF32 keeps 10 mantissa bits: a[] rounds to 1 + multiples of 2^-10.
        tf32 += std::nearbyint(double(a[p * m + i]) * 1024.0) / 1024.0 * b[j * k + p];
      }
      EXPECT_NEAR(c[j * m + i], exact, 1e-5 * std::fabs(exact) + 1e-6);
      EXPECT_NEAR(c_tf32[j * m + i], tf32, 1e-5 * std::fabs(tf32) + 1e-6);
      EXPECT_NE(c[j * m + i], c_tf32[j * m + i]);
    }
  cublasDestroy(blas);
}

// cuBLASLt: D = gelu(A B + bias) column-major, with the checks it makes first (layouts that
// disagree, a bias epilogue without a bias, a pointer less aligned than the algorithm was
// chosen for) and GELU as the tanh approximation cuBLASLt documents.
TEST(CudaEmulator, CublasLtMatmulChecksAndComputes) {
  const int m = 3, n = 4, k = 5;
  std::vector<float> a(m * k), b(k * n), bias(m);
  for (int i = 0; i < m * k; ++i) a[i] = 0.25f * float(i % 5) - 0.5f;
  for (int i = 0; i < k * n; ++i) b[i] = 0.5f - 0.125f * float(i % 7);
  for (int i = 0; i < m; ++i) bias[i] = 0.1f * float(i) - 0.1f;
  float* d_a = device_array<float>(a.size());
  float* d_b = device_array<float>(b.size());
  float* d_bias = device_array<float>(bias.size());
  float* d_d = device_array<float>(m * n + 1);
  cudaMemcpy(d_a, a.data(), a.size() * sizeof(float), cudaMemcpyHostToDevice);
  cudaMemcpy(d_b, b.data(), b.size() * sizeof(float), cudaMemcpyHostToDevice);
  cudaMemcpy(d_bias, bias.data(), bias.size() * sizeof(float), cudaMemcpyHostToDevice);

  cublasLtHandle_t lt;
  ASSERT_EQ(cublasLtCreate(&lt), CUBLAS_STATUS_SUCCESS);
  cublasLtMatmulDesc_t desc;
  ASSERT_EQ(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F), CUBLAS_STATUS_SUCCESS);
  const uint32_t epilogue = CUBLASLT_EPILOGUE_GELU_BIAS;
  ASSERT_EQ(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue,
                                           sizeof epilogue),
            CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, 8),
            CUBLAS_STATUS_INVALID_VALUE);  // the attribute's size
  cublasLtMatrixLayout_t la, lb, ld, wrong;
  ASSERT_EQ(cublasLtMatrixLayoutCreate(&la, CUDA_R_32F, m, k, m), CUBLAS_STATUS_SUCCESS);
  ASSERT_EQ(cublasLtMatrixLayoutCreate(&lb, CUDA_R_32F, k, n, k), CUBLAS_STATUS_SUCCESS);
  ASSERT_EQ(cublasLtMatrixLayoutCreate(&ld, CUDA_R_32F, m, n, m), CUBLAS_STATUS_SUCCESS);
  ASSERT_EQ(cublasLtMatrixLayoutCreate(&wrong, CUDA_R_32F, m + 1, n, m + 1), CUBLAS_STATUS_SUCCESS);
  cublasLtMatmulPreference_t pref;
  ASSERT_EQ(cublasLtMatmulPreferenceCreate(&pref), CUBLAS_STATUS_SUCCESS);
  const uint32_t aligned16 = 16;
  ASSERT_EQ(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES,
                                                 &aligned16, sizeof aligned16),
            CUBLAS_STATUS_SUCCESS);
  cublasLtMatmulHeuristicResult_t result;
  int found = 0;
  // No bias pointer yet: the bias epilogue is refused.
  EXPECT_EQ(cublasLtMatmulAlgoGetHeuristic(lt, desc, la, lb, ld, ld, pref, 1, &result, &found),
            CUBLAS_STATUS_NOT_SUPPORTED);
  const float* bias_pointer = d_bias;
  ASSERT_EQ(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias_pointer,
                                           sizeof bias_pointer),
            CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(
      cublasLtMatmulAlgoGetHeuristic(lt, desc, la, lb, wrong, wrong, pref, 1, &result, &found),
      CUBLAS_STATUS_NOT_SUPPORTED);  // C and D are not m x n
  ASSERT_EQ(cublasLtMatmulAlgoGetHeuristic(lt, desc, la, lb, ld, ld, pref, 1, &result, &found),
            CUBLAS_STATUS_SUCCESS);
  ASSERT_EQ(found, 1);
  const float one = 1.0f, zero = 0.0f;
  EXPECT_EQ(cublasLtMatmul(lt, desc, &one, d_a, la, d_b, lb, &zero, d_d + 1, ld, d_d + 1, ld,
                           &result.algo, nullptr, 0, 0),
            CUBLAS_STATUS_NOT_SUPPORTED);  // D 4-byte aligned, the algorithm assumed 16
  const cuda_emulator::WorkCounts before = cuda_emulator::work_counts();
  ASSERT_EQ(cublasLtMatmul(lt, desc, &one, d_a, la, d_b, lb, &zero, d_d, ld, d_d, ld, &result.algo,
                           nullptr, 0, 0),
            CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(cuda_emulator::work_counts().gemms, before.gemms + 1);
  const std::vector<float> d = download(d_d, m * n);
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) {
      double x = bias[i];
      for (int p = 0; p < k; ++p) x += double(a[p * m + i]) * b[j * k + p];
      const double gelu =
          0.5 * x * (1 + std::tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)));
      EXPECT_NEAR(d[j * m + i], gelu, 1e-6) << i << ", " << j;
    }
  cublasLtMatmulPreferenceDestroy(pref);
  for (cublasLtMatrixLayout_t l : {la, lb, ld, wrong}) cublasLtMatrixLayoutDestroy(l);
  cublasLtMatmulDescDestroy(desc);
  cublasLtDestroy(lt);
}

// One cuBLASLt matmul D[m, n] = A[m, k] B[k, n], column-major, A and B of `operands`, C and
// D float32: the heuristic's status, then (where it found an algorithm) the matmul's.
cublasStatus_t lt_matmul(cublasComputeType_t compute, cudaDataType operands, cudaDataType d_type,
                         int m, int n, int k, const void* a, const void* b, float* d) {
  cublasLtHandle_t lt;
  cublasLtMatmulDesc_t desc;
  cublasLtMatrixLayout_t la, lb, ld;
  cublasLtMatmulPreference_t pref;
  EXPECT_EQ(cublasLtCreate(&lt), CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(cublasLtMatmulDescCreate(&desc, compute, CUDA_R_32F), CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(cublasLtMatrixLayoutCreate(&la, operands, m, k, m), CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(cublasLtMatrixLayoutCreate(&lb, operands, k, n, k), CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(cublasLtMatrixLayoutCreate(&ld, d_type, m, n, m), CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(cublasLtMatmulPreferenceCreate(&pref), CUBLAS_STATUS_SUCCESS);
  cublasLtMatmulHeuristicResult_t result;
  int found = 0;
  cublasStatus_t status =
      cublasLtMatmulAlgoGetHeuristic(lt, desc, la, lb, ld, ld, pref, 1, &result, &found);
  const float one = 1.0f, zero = 0.0f;
  if (status == CUBLAS_STATUS_SUCCESS)
    status = cublasLtMatmul(lt, desc, &one, a, la, b, lb, &zero, d, ld, d, ld, &result.algo,
                            nullptr, 0, 0);
  cublasLtMatmulPreferenceDestroy(pref);
  for (cublasLtMatrixLayout_t l : {la, lb, ld}) cublasLtMatrixLayoutDestroy(l);
  cublasLtMatmulDescDestroy(desc);
  cublasLtDestroy(lt);
  return status;
}

// The reduced precisions cuBLASLt computes for the project, and only those: bfloat16 A and
// B with float32 C and D and float32 compute (the products exact, float32 sums), and
// float32 A and B with the FAST_TF32 compute (the inputs rounded to tf32 first).
TEST(CudaEmulator, CublasLtBf16AndTf32AsTheHardwareDefinesThem) {
  const int m = 3, n = 4, k = 5;
  // bfloat16 values using all 8 significant bits (1 + j/128), as raw bits.
  std::vector<uint16_t> a16(m * k), b16(k * n);
  std::vector<float> a16_value(m * k), b16_value(k * n);
  const auto bf16_of = [](float x) {
    uint32_t bits;
    std::memcpy(&bits, &x, 4);
    return uint16_t(bits >> 16);
  };
  for (int i = 0; i < m * k; ++i) a16[i] = bf16_of(a16_value[i] = 1.0f + float(i % 128) / 128);
  for (int i = 0; i < k * n; ++i) b16[i] = bf16_of(b16_value[i] = -1.0f - float(i * 3) / 128);
  // float32 values below TF32's step (1 + 1e-3 i + 3e-4), and b exact in tf32.
  std::vector<float> a(m * k), b(k * n);
  for (int i = 0; i < m * k; ++i) a[i] = 1.0f + 1e-3f * float(i) + 3e-4f;
  for (int i = 0; i < k * n; ++i) b[i] = 0.5f - 0.125f * float(i % 7);
  uint16_t* d_a16 = device_array<uint16_t>(a16.size());
  uint16_t* d_b16 = device_array<uint16_t>(b16.size());
  float* d_a = device_array<float>(a.size());
  float* d_b = device_array<float>(b.size());
  float* d_d = device_array<float>(m * n);
  cudaMemcpy(d_a16, a16.data(), a16.size() * 2, cudaMemcpyHostToDevice);
  cudaMemcpy(d_b16, b16.data(), b16.size() * 2, cudaMemcpyHostToDevice);
  cudaMemcpy(d_a, a.data(), a.size() * sizeof(float), cudaMemcpyHostToDevice);
  cudaMemcpy(d_b, b.data(), b.size() * sizeof(float), cudaMemcpyHostToDevice);

  // Refused: bfloat16 with the TF32 compute or a bfloat16 D, and compute types not used here.
  EXPECT_EQ(
      lt_matmul(CUBLAS_COMPUTE_32F_FAST_TF32, CUDA_R_16BF, CUDA_R_32F, m, n, k, d_a16, d_b16, d_d),
      CUBLAS_STATUS_NOT_SUPPORTED);
  EXPECT_EQ(lt_matmul(CUBLAS_COMPUTE_32F, CUDA_R_16BF, CUDA_R_16BF, m, n, k, d_a16, d_b16, d_d),
            CUBLAS_STATUS_NOT_SUPPORTED);
  EXPECT_EQ(lt_matmul(CUBLAS_COMPUTE_32F_FAST_16BF, CUDA_R_32F, CUDA_R_32F, m, n, k, d_a, d_b, d_d),
            CUBLAS_STATUS_NOT_SUPPORTED);
  EXPECT_EQ(lt_matmul(CUBLAS_COMPUTE_16F, CUDA_R_16F, CUDA_R_32F, m, n, k, d_a16, d_b16, d_d),
            CUBLAS_STATUS_NOT_SUPPORTED);

  ASSERT_EQ(lt_matmul(CUBLAS_COMPUTE_32F, CUDA_R_16BF, CUDA_R_32F, m, n, k, d_a16, d_b16, d_d),
            CUBLAS_STATUS_SUCCESS);
  const std::vector<float> d_bf16 = download(d_d, m * n);
  ASSERT_EQ(lt_matmul(CUBLAS_COMPUTE_32F, CUDA_R_32F, CUDA_R_32F, m, n, k, d_a, d_b, d_d),
            CUBLAS_STATUS_SUCCESS);
  const std::vector<float> d_fp32 = download(d_d, m * n);
  ASSERT_EQ(lt_matmul(CUBLAS_COMPUTE_32F_FAST_TF32, CUDA_R_32F, CUDA_R_32F, m, n, k, d_a, d_b, d_d),
            CUBLAS_STATUS_SUCCESS);
  const std::vector<float> d_tf32 = download(d_d, m * n);
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) {
      double bf16 = 0, exact = 0, tf32 = 0;
      for (int p = 0; p < k; ++p) {
        bf16 += double(a16_value[p * m + i]) * b16_value[j * k + p];
        exact += double(a[p * m + i]) * b[j * k + p];
        // TF32 keeps 10 mantissa bits: a[] rounds to 1 + multiples of 2^-10.
        tf32 += std::nearbyint(double(a[p * m + i]) * 1024.0) / 1024.0 * b[j * k + p];
      }
      EXPECT_NEAR(d_bf16[j * m + i], bf16, 1e-6 * std::fabs(bf16));
      EXPECT_NEAR(d_fp32[j * m + i], exact, 1e-6 * std::fabs(exact) + 1e-6);
      EXPECT_NEAR(d_tf32[j * m + i], tf32, 1e-6 * std::fabs(tf32) + 1e-6);
      EXPECT_NE(d_fp32[j * m + i], d_tf32[j * m + i]);
    }
  for (void* p : {static_cast<void*>(d_a16), static_cast<void*>(d_b16), static_cast<void*>(d_a),
                  static_cast<void*>(d_b), static_cast<void*>(d_d)})
    cudaFree(p);
}

}  // namespace
