// The emulated WMMA API (cuda_headers/mma.h): products of bfloat16 tiles in every layout
// and thread order, of tf32 tiles, and the rules a kernel must keep reported: every lane at
// each *_sync call with the same arguments, an ldm of whole 16-byte units, 256-bit aligned
// tiles, tf32 inputs rounded to tf32.
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <gtest/gtest.h>
#include <mma.h>

#include <cstdint>
#include <cstdlib>
#include <vector>

#include "tests/cuda_emulator/test_memory.h"

namespace {

using namespace nvcuda;
using cuda_emulator_test::device_copy;
using cuda_emulator_test::download;

constexpr int kM = 32, kN = 32, kK = 48;  // 2 x 2 output tiles, 3 steps of k

// out = (a b + c) * 2 for a [kM, kK], b [kK, kN] (each row- or column-major, as the
// layouts say) and c [kM, kN] row-major; out row- or column-major. One warp per 16-row band.
template <class LayoutA, class LayoutB>
__global__ void product_kernel(const __nv_bfloat16* a, const __nv_bfloat16* b, const float* c,
                               float* out, bool out_col_major) {
  constexpr bool a_col = std::is_same_v<LayoutA, wmma::col_major>;
  constexpr bool b_col = std::is_same_v<LayoutB, wmma::col_major>;
  const int band = threadIdx.x / 32;
  for (int n = 0; n < kN / 16; ++n) {
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
    wmma::load_matrix_sync(acc, c + band * 16 * kN + n * 16, kN, wmma::mem_row_major);
    for (int k = 0; k < kK; k += 16) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, LayoutA> fa;
      wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, LayoutB> fb;
      wmma::load_matrix_sync(fa, a_col ? a + k * kM + band * 16 : a + band * 16 * kK + k,
                             a_col ? kM : kK);
      wmma::load_matrix_sync(fb, b_col ? b + n * 16 * kK + k : b + k * kN + n * 16,
                             b_col ? kK : kN);
      wmma::mma_sync(acc, fa, fb, acc);
    }
    for (int i = 0; i < acc.num_elements; ++i) acc.x[i] *= 2.0f;
    if (out_col_major)
      wmma::store_matrix_sync(out + n * 16 * kM + band * 16, acc, kM, wmma::mem_col_major);
    else
      wmma::store_matrix_sync(out + band * 16 * kN + n * 16, acc, kN, wmma::mem_row_major);
  }
}

// Small multiples of 1/8: every product and sum is exact in float32, so the emulated
// products must equal the reference exactly, whatever their order.
float exact_value(int i) { return float((i * 37) % 17 - 8) / 8.0f; }

template <class LayoutA, class LayoutB>
bool product_is_right(bool out_col_major) {
  constexpr bool a_col = std::is_same_v<LayoutA, wmma::col_major>;
  constexpr bool b_col = std::is_same_v<LayoutB, wmma::col_major>;
  std::vector<float> a(kM * kK), b(kK * kN), c(kM * kN);
  for (size_t i = 0; i < a.size(); ++i) a[i] = exact_value(int(i));
  for (size_t i = 0; i < b.size(); ++i) b[i] = exact_value(int(i) + 5);
  for (size_t i = 0; i < c.size(); ++i) c[i] = exact_value(int(i) + 11);
  std::vector<__nv_bfloat16> a16(a.size()), b16(b.size());
  for (int r = 0; r < kM; ++r)
    for (int k = 0; k < kK; ++k)
      a16[a_col ? k * kM + r : r * kK + k] = __float2bfloat16_rn(a[r * kK + k]);
  for (int k = 0; k < kK; ++k)
    for (int n = 0; n < kN; ++n)
      b16[b_col ? n * kK + k : k * kN + n] = __float2bfloat16_rn(b[k * kN + n]);
  float* d_out = device_copy(std::vector<float>(c.size()));
  product_kernel<LayoutA, LayoutB>
      <<<1, 64>>>(device_copy(a16), device_copy(b16), device_copy(c), d_out, out_col_major);
  const std::vector<float> got = download(d_out, c.size());
  for (int r = 0; r < kM; ++r)
    for (int n = 0; n < kN; ++n) {
      float want = c[r * kN + n];
      for (int k = 0; k < kK; ++k) want += a[r * kK + k] * b[k * kN + n];
      const float at = out_col_major ? got[n * kM + r] : got[r * kN + n];
      if (at != 2.0f * want) return false;
    }
  return true;
}

bool products_are_right() {
  return product_is_right<wmma::row_major, wmma::col_major>(false) &&
         product_is_right<wmma::col_major, wmma::row_major>(false) &&
         product_is_right<wmma::row_major, wmma::row_major>(true) &&
         product_is_right<wmma::col_major, wmma::col_major>(true);
}

TEST(CudaEmulatorWmma, Bf16ProductsInEveryLayoutAndOrder) {
  // A fresh process for each order: this one may have started the emulator's threads, which
  // a forked child would not have.
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  for (const char* order : {"forward", "reverse", "random:7"})
    EXPECT_EXIT(
        {
          setenv("MUSIQ_CUDA_EMULATOR_ORDER", order, 1);
          std::exit(products_are_right() ? 0 : 1);
        },
        ::testing::ExitedWithCode(0), "")
        << order;
}

// A bf16 fragment holds bfloat16 values: what __float2bfloat16_rn made of the inputs, ties
// to even (1 + 2^-8 lies halfway between 1 and 1 + 2^-7).
__global__ void rounded_product_kernel(const __nv_bfloat16* ones, float* c) {
  wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> fa;
  wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::row_major> fb;
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
  wmma::fill_fragment(fa, __float2bfloat16_rn(1.0f + 1.0f / 256));
  wmma::load_matrix_sync(fb, ones, 16);
  wmma::fill_fragment(acc, 0.0f);
  wmma::mma_sync(acc, fa, fb, acc);
  wmma::store_matrix_sync(c, acc, 16, wmma::mem_row_major);
}

TEST(CudaEmulatorWmma, Bf16InputsAreRoundedToNearestEven) {
  std::vector<__nv_bfloat16> ones(256, __float2bfloat16_rn(1.0f + 3.0f / 256));
  std::vector<float> c(256);
  float* d_c = device_copy(c);
  rounded_product_kernel<<<1, 32>>>(device_copy(ones), d_c);
  // 16 products of 1 and 1 + 2^-6 (1 + 3 x 2^-8 rounds up to it).
  for (float v : download(d_c, c.size())) EXPECT_EQ(v, 16.0f * (1.0f + 1.0f / 64));
}

// tf32 fragments load floats; the kernel rounds them with __float_to_tf32, ties to even:
// 1 + 3 x 2^-11 lies halfway between 1 + 2^-10 and 1 + 2^-9 and rounds to the latter.
// c = a b over k = 16 in two m16n16k8 steps, b column-major.
__global__ void tf32_product_kernel(const float* a, const float* b, float* c) {
  wmma::fragment<wmma::accumulator, 16, 16, 8, float> acc;
  wmma::fill_fragment(acc, 0.0f);
  for (int k = 0; k < 16; k += 8) {
    wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::row_major> fa;
    wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::col_major> fb;
    wmma::load_matrix_sync(fa, a + k, 16);
    wmma::load_matrix_sync(fb, b + k, 16);
    for (int i = 0; i < fa.num_elements; ++i) fa.x[i] = wmma::__float_to_tf32(fa.x[i]);
    for (int i = 0; i < fb.num_elements; ++i) fb.x[i] = wmma::__float_to_tf32(fb.x[i]);
    wmma::mma_sync(acc, fa, fb, acc);
  }
  wmma::store_matrix_sync(c, acc, 16, wmma::mem_row_major);
}

TEST(CudaEmulatorWmma, Tf32ProductsOfRoundedInputs) {
  std::vector<float> a(256), b(256, 1.0f + 3.0f / 2048);
  for (size_t i = 0; i < a.size(); ++i) a[i] = exact_value(int(i));
  std::vector<float> c(256);
  float* d_c = device_copy(c);
  tf32_product_kernel<<<1, 32>>>(device_copy(a), device_copy(b), d_c);
  const std::vector<float> got = download(d_c, c.size());
  for (int r = 0; r < 16; ++r)
    for (int n = 0; n < 16; ++n) {
      float want = 0.0f;  // exact: multiples of 1/8 times 1 + 2^-9
      for (int k = 0; k < 16; ++k) want += a[r * 16 + k] * (1.0f + 1.0f / 512);
      EXPECT_EQ(got[r * 16 + n], want) << r << ", " << n;
    }
}

// Broken rules, each a kernel of one warp.
__global__ void divergent_kernel(const __nv_bfloat16* a, float* c) {
  if (threadIdx.x >= 16) return;
  wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> fa;
  wmma::load_matrix_sync(fa, a, 16);
  c[threadIdx.x] = __bfloat162float(fa.x[0]);
}

__global__ void half_shuffles_kernel(const __nv_bfloat16* a, float* c) {
  wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> fa;
  if (threadIdx.x < 16)
    wmma::load_matrix_sync(fa, a, 16);
  else
    __syncwarp();
  c[threadIdx.x] = 0;
}

__global__ void lanes_disagree_kernel(const __nv_bfloat16* a, float* c) {
  wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> fa;
  wmma::load_matrix_sync(fa, a + (threadIdx.x == 5 ? 16 : 0), 16);
  c[threadIdx.x] = 0;
}

__global__ void load_kernel(const __nv_bfloat16* a, unsigned ldm, float* c) {
  wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major> fb;
  wmma::load_matrix_sync(fb, a, ldm);
  c[threadIdx.x] = 0;
}

__global__ void store_kernel(float* c, unsigned ldm) {
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
  wmma::fill_fragment(acc, 1.0f);
  wmma::store_matrix_sync(c, acc, ldm, wmma::mem_row_major);
}

__global__ void unrounded_tf32_kernel(const float* a, float* c) {
  wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::row_major> fa;
  wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::row_major> fb;
  wmma::fragment<wmma::accumulator, 16, 16, 8, float> acc;
  wmma::load_matrix_sync(fa, a, 8);
  wmma::fill_fragment(fb, 1.0f);
  wmma::fill_fragment(acc, 0.0f);
  wmma::mma_sync(acc, fa, fb, acc);
  wmma::store_matrix_sync(c, acc, 16, wmma::mem_row_major);
}

TEST(CudaEmulatorWmmaDeathTest, BrokenRulesAbortWithAReport) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  const std::vector<__nv_bfloat16> a(48 * 48, __float2bfloat16_rn(1.0f));
  const std::vector<float> c(48 * 48);
  EXPECT_DEATH(
      {
        divergent_kernel<<<1, 32>>>(device_copy(a), device_copy(c));
        cudaDeviceSynchronize();
      },
      "wmma::\\*_sync with mask 0xffffffff, which names exited lanes|exited while lanes");
  EXPECT_DEATH(
      {
        half_shuffles_kernel<<<1, 32>>>(device_copy(a), device_copy(c));
        cudaDeviceSynchronize();
      },
      "while the other lanes of the mask wait in (__syncwarp|wmma::\\*_sync)");
  EXPECT_DEATH(
      {
        lanes_disagree_kernel<<<1, 32>>>(device_copy(a), device_copy(c));
        cudaDeviceSynchronize();
      },
      "calls wmma::load_matrix_sync with another pointer or ldm than lane 0");
  EXPECT_DEATH(
      {
        load_kernel<<<1, 32>>>(device_copy(a), 20, device_copy(c));
        cudaDeviceSynchronize();
      },
      "load_matrix_sync with ldm 20, not a multiple of 8 elements");
  EXPECT_DEATH(
      {
        load_kernel<<<1, 32>>>(device_copy(a) + 8, 16, device_copy(c));
        cudaDeviceSynchronize();
      },
      "load_matrix_sync with a pointer that is not 256-bit aligned");
  EXPECT_DEATH(
      {
        store_kernel<<<1, 32>>>(device_copy(c), 18);
        cudaDeviceSynchronize();
      },
      "store_matrix_sync with ldm 18, not a multiple of 4 elements");
  EXPECT_DEATH(
      {
        unrounded_tf32_kernel<<<1, 32>>>(device_copy(std::vector<float>(128, 1.0f + 1.0f / 4096)),
                                         device_copy(c));
        cudaDeviceSynchronize();
      },
      "mma_sync with a tf32 input not rounded to tf32");
}

}  // namespace
