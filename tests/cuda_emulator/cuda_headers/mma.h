// <mma.h> for the kernels the emulator compiles (this folder comes before the toolkit's
// headers): nvcuda::wmma for the shapes the project uses, m16n16k16 with __nv_bfloat16
// inputs and m16n16k8 with precision::tf32 inputs, both with float accumulators.
// A real fragment spreads its tile over the warp's lanes in an unspecified order, so a
// kernel may only touch x[i] uniformly (every element alike); here every lane holds the
// whole tile, row-major. Each *_sync call is a warp collective of all 32 lanes, reported as
// a divergent __shfl_sync is; the lanes must also agree on its pointer and ldm. Loads and
// stores touch memory between two such meetings: a load sees what every lane wrote before
// it, and no lane writes over the tile before all have read it. mma_sync sums in float32,
// in k order after the accumulator (hardware's order is its own).
#pragma once
#include <cuda_bf16.h>

#include <cstdint>
#include <sstream>
#include <string>
#include <type_traits>

#include "base/precision.h"
#include "tests/cuda_emulator/device.h"
#include "tests/cuda_emulator/settings.h"

namespace nvcuda::wmma {

struct matrix_a;
struct matrix_b;
struct accumulator;
struct row_major;
struct col_major;
enum layout_t { mem_row_major, mem_col_major };
namespace precision {
struct tf32;  // float storage, 10 explicit mantissa bits in the product
}

namespace detail {

template <class T>
struct storage {
  using type = T;
};
template <>
struct storage<precision::tf32> {
  using type = float;
};

// A fragment's tile: rows x cols of the product's M x K (a), K x N (b) or M x N (accumulator).
template <class Use, int M, int N, int K>
struct tile;
template <int M, int N, int K>
struct tile<matrix_a, M, N, K> {
  static constexpr int rows = M, cols = K;
};
template <int M, int N, int K>
struct tile<matrix_b, M, N, K> {
  static constexpr int rows = K, cols = N;
};
template <int M, int N, int K>
struct tile<accumulator, M, N, K> {
  static constexpr int rows = M, cols = N;
};

template <class Use, int M, int N, int K, class T>
constexpr bool supported() {
  constexpr bool input = !std::is_same_v<Use, accumulator>;
  if (M != 16 || N != 16) return false;
  if (K == 16) return input ? std::is_same_v<T, __nv_bfloat16> : std::is_same_v<T, float>;
  if (K == 8) return input ? std::is_same_v<T, precision::tf32> : std::is_same_v<T, float>;
  return false;
}

inline std::string where() {
  std::ostringstream s;
  s << "thread (" << threadIdx.x << ", " << threadIdx.y << ", " << threadIdx.z << ") of block ("
    << blockIdx.x << ", " << blockIdx.y << ", " << blockIdx.z << ")";
  return s.str();
}

// The warp meets at `call`; every lane must pass lane 0's `arguments`.
inline void meet(const char* call, uint64_t arguments) {
  const uint64_t first = ::cuda_emulator::warp_collective(::cuda_emulator::Collective::kWmma,
                                                          0xFFFFFFFFu, arguments, 0);
  if (first != arguments)
    ::cuda_emulator::violation(where() + " calls wmma::" + call +
                               " with another pointer or ldm than lane 0");
}

inline uint64_t arguments(const void* p, unsigned ldm) {
  return reinterpret_cast<uintptr_t>(p) ^ (uint64_t{ldm} << 48);
}

// CUDA's rules for a fragment's memory: a 256-bit aligned pointer and an ldm that is a
// multiple of 16 bytes (8 elements of 16 bits, 4 of float).
template <class E>
void check_memory(const char* call, const void* p, unsigned ldm) {
  if (reinterpret_cast<uintptr_t>(p) % 32 != 0)
    ::cuda_emulator::violation(where() + " calls wmma::" + call +
                               " with a pointer that is not 256-bit aligned");
  if (ldm * sizeof(E) % 16 != 0)
    ::cuda_emulator::violation(where() + " calls wmma::" + call + " with ldm " +
                               std::to_string(ldm) + ", not a multiple of " +
                               std::to_string(16 / sizeof(E)) + " elements");
}

}  // namespace detail

template <class Use, int M, int N, int K, class T, class Layout = void>
class fragment {
  static_assert(detail::supported<Use, M, N, K, T>(),
                "the emulator has m16n16k16 bf16 and m16n16k8 tf32 fragments, float accumulators");

 public:
  using element_type = typename detail::storage<T>::type;
  using layout = Layout;
  static constexpr int rows = detail::tile<Use, M, N, K>::rows;
  static constexpr int cols = detail::tile<Use, M, N, K>::cols;
  static constexpr int num_elements = rows * cols;
  element_type x[num_elements];  // the whole tile, row-major
};

// x rounded to tf32 as the CPU twin rounds it (round_to_tf32: to nearest, ties to even).
// The device's cvt.rna rounds ties away from zero: one tf32 step apart on the 1 in 8,192
// floats that lie exactly halfway.
inline float __float_to_tf32(float in) { return ::musiq::round_to_tf32(in); }

template <class Use, int M, int N, int K, class T, class Layout, class V>
void fill_fragment(fragment<Use, M, N, K, T, Layout>& f, const V& value) {
  for (auto& e : f.x)
    e = static_cast<typename fragment<Use, M, N, K, T, Layout>::element_type>(value);
}

namespace detail {

template <class F, class E>
void load(F& f, const E* p, unsigned ldm, bool col) {
  check_memory<E>("load_matrix_sync", p, ldm);
  meet("load_matrix_sync", arguments(p, ldm));
  for (int r = 0; r < F::rows; ++r)
    for (int c = 0; c < F::cols; ++c)
      f.x[r * F::cols + c] = col ? p[size_t{ldm} * c + r] : p[size_t{ldm} * r + c];
  meet("load_matrix_sync", arguments(p, ldm));
}

}  // namespace detail

template <class Use, int M, int N, int K, class T, class Layout, class E>
void load_matrix_sync(fragment<Use, M, N, K, T, Layout>& f, const E* p, unsigned ldm) {
  static_assert(!std::is_same_v<Use, accumulator>, "an accumulator's load names its layout");
  static_assert(std::is_same_v<E, typename fragment<Use, M, N, K, T, Layout>::element_type>);
  detail::load(f, p, ldm, std::is_same_v<Layout, col_major>);
}

template <int M, int N, int K>
void load_matrix_sync(fragment<accumulator, M, N, K, float>& f, const float* p, unsigned ldm,
                      layout_t layout) {
  detail::load(f, p, ldm, layout == mem_col_major);
}

template <int M, int N, int K>
void store_matrix_sync(float* p, const fragment<accumulator, M, N, K, float>& f, unsigned ldm,
                       layout_t layout) {
  using F = fragment<accumulator, M, N, K, float>;
  detail::check_memory<float>("store_matrix_sync", p, ldm);
  detail::meet("store_matrix_sync", detail::arguments(p, ldm));
  for (int r = 0; r < F::rows; ++r)
    for (int c = 0; c < F::cols; ++c)
      (layout == mem_col_major ? p[size_t{ldm} * c + r] : p[size_t{ldm} * r + c]) =
          f.x[r * F::cols + c];
  detail::meet("store_matrix_sync", detail::arguments(p, ldm));
}

namespace detail {

inline float value(float x) { return x; }
inline float value(__nv_bfloat16 x) { return __bfloat162float(x); }

}  // namespace detail

namespace detail {

// A tf32 input must be a tf32 value (__float_to_tf32 applied after the load): hardware would
// drop the low bits of one that is not, which the CPU twin never does.
template <class F>
void check_tf32(const F& f) {
  for (float x : f.x)
    if (__float_to_tf32(x) != x && x == x)
      ::cuda_emulator::violation(where() +
                                 " calls wmma::mma_sync with a tf32 input not rounded to tf32");
}

}  // namespace detail

// d = a b + c.
template <int M, int N, int K, class T, class LayoutA, class LayoutB>
void mma_sync(fragment<accumulator, M, N, K, float>& d,
              const fragment<matrix_a, M, N, K, T, LayoutA>& a,
              const fragment<matrix_b, M, N, K, T, LayoutB>& b,
              const fragment<accumulator, M, N, K, float>& c) {
  detail::meet("mma_sync", 0);
  if constexpr (std::is_same_v<T, precision::tf32>) {
    detail::check_tf32(a);
    detail::check_tf32(b);
  }
  fragment<accumulator, M, N, K, float> sum;
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j) {
      float s = c.x[i * N + j];
      for (int k = 0; k < K; ++k)
        s += detail::value(a.x[i * K + k]) * detail::value(b.x[k * N + j]);
      sum.x[i * N + j] = s;
    }
  d = sum;
}

}  // namespace nvcuda::wmma
