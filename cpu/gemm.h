// The GEMM behind linear(): out += a @ b with b repacked once into column panels, blocked
// for the caches and threaded over tiles of the output. Dense weights are packed when the
// model loads (engine/model/cpu_model.cc); OpenBLAS packed them again at every call.
#pragma once
#include <cstdint>

namespace musiq::cpu {

// Columns per panel: whatever the ISA (cpu/isa.h), so that weights are packed once at load.
// AVX2 tiles hold one panel as two 8-float vectors, AVX-512 tiles two adjacent panels as two
// 16-float vectors (gemm.cc).
constexpr int kPanelWidth = 16;

// Floats of b [k, n] once packed: ceil(n / 16) panels of [k][16], the last zero-padded.
int64_t packed_floats(int k, int n);
// b [k, n] with rows ldb apart.
void pack_columns(const float* b, int k, int n, int64_t ldb, float* packed);
// b = bt^T for bt [n, k] with rows ldbt apart (attention's keys: K^T).
void pack_transposed(const float* bt, int k, int n, int64_t ldbt, float* packed);
// b [k, n] (rows n apart) packed into this thread's buffer, which the thread's next call
// reuses: for callers holding raw weights (tests, the GPU comparison); the model packs its
// weights once at load.
const float* packed_for_call(const float* b, int k, int n);

// out[m, n] (rows ldc apart) = start + a[m, k] @ b, b packed as above, start =
// (out if `accumulate`, else 0) + bias (if not null); then gelu_tanh if `gelu`. Threads
// (OpenMP; one inside a parallel region) take tiles of rows x panels dynamically. Each
// element is its start plus float32 partial sums over k-blocks of at most 512, in k order,
// with the same operations whichever of the AVX2 and AVX-512 kernels runs (cpu/isa.h):
// those two give equal results.
void gemm(const float* a, int64_t m, int k, const float* packed, int n, const float* bias,
          bool accumulate, bool gelu, float* out, int64_t ldc);

// An implicit im2col: `a` read in place from a convolution's input, zero-padded to
// [images, hp, wp, cin] so that every window lies inside it. Row i of `a` is the window of
// output position i (image, oy, ox), in (kh, kw, cin) order: kh runs of kw * cin floats,
// each contiguous in the input.
struct ConvWindows {
  const float* padded;
  int hp, wp, cin, kh, kw, stride, out_h, out_w;
};
// out[m, n] (rows n apart) = a @ b for `a` as `windows` finds it, k = kh * kw * cin, m =
// images * out_h * out_w: the same sums in the same order as gemm() on the im2col matrix.
void gemm(const ConvWindows& windows, int64_t m, const float* packed, int n, float* out);

}  // namespace musiq::cpu
