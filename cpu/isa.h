// Which instruction set the CPU kernels run, decided once per process: AVX-512 where the
// CPU has it, else AVX2 with FMA, else baseline x86-64 (SSE2); MUSIQ_CPU_ISA=avx2|baseline
// asks for a lower one (to compare paths, or to measure what AVX-512 brings).
// Each hot kernel is an always_inline template on Isa, compiled once per ISA with the
// matching target attribute by MUSIQ_DISPATCH_BY_ISA, which picks the one to call.
#pragma once

namespace musiq::cpu {

// In increasing order: each runs on any CPU that runs the ones after it.
enum class Isa { kBaseline, kAvx2, kAvx512 };

// "baseline", "avx2", "avx512": as MUSIQ_CPU_ISA spells them and `musiq info` reports them.
const char* isa_name(Isa isa);

// The best the CPU runs: AVX-512 needs F, BW, DQ and VL; AVX2 needs FMA too.
Isa supported_isa();

// What the kernels run: supported_isa() or what MUSIQ_CPU_ISA names. musiq::Error with a
// one-line message when MUSIQ_CPU_ISA is not an ISA's name or names one the CPU lacks.
// The first call decides; the engine makes it when it picks the CPU (engine/device.cc),
// outside the ops' parallel regions.
Isa cpu_isa();

// The kernels run `isa` from now on (tests comparing the paths in one process);
// musiq::Error if the CPU lacks it. Not while ops run on other threads.
void set_cpu_isa(Isa isa);

}  // namespace musiq::cpu

#if defined(__x86_64__) && defined(__GNUC__)
// x86-64-v3's and x86-64-v4's feature sets, as flags so that GCC inlines the kernels'
// default-target templates into them (an arch= attribute would forbid that). GCC keeps its
// 256-bit preference for loops it vectorises itself: prefer-vector-width=512 made the
// norms, resize, max pool and softmax no faster. The GEMM's vectors are explicit.
#define MUSIQ_TARGET_AVX2 __attribute__((target("avx2,fma,bmi,bmi2,f16c,lzcnt,movbe,popcnt")))
#define MUSIQ_TARGET_AVX512                                                \
  __attribute__((                                                          \
      target("avx2,fma,bmi,bmi2,f16c,lzcnt,movbe,popcnt,avx512f,avx512bw," \
             "avx512dq,avx512vl")))
#else
#define MUSIQ_TARGET_AVX2
#define MUSIQ_TARGET_AVX512
#endif

// Defines `ret name params`, which calls name##_kernel<kIsa> args compiled for cpu_isa()'s
// ISA. name##_kernel is an always_inline template on Isa (so that it compiles with each
// target), holding no OpenMP parallel region (those are outlined before inlining, so their
// bodies would stay baseline: callers keep the parallel loop and dispatch inside it).
#define MUSIQ_DISPATCH_BY_ISA(ret, name, params, args)                                           \
  MUSIQ_TARGET_AVX512 static ret name##_avx512 params {                                          \
    return name##_kernel<::musiq::cpu::Isa::kAvx512> args;                                       \
  }                                                                                              \
  MUSIQ_TARGET_AVX2 static ret name##_avx2 params {                                              \
    return name##_kernel<::musiq::cpu::Isa::kAvx2> args;                                         \
  }                                                                                              \
  static ret name##_baseline params { return name##_kernel<::musiq::cpu::Isa::kBaseline> args; } \
  ret name params {                                                                              \
    switch (::musiq::cpu::cpu_isa()) {                                                           \
      case ::musiq::cpu::Isa::kAvx512: return name##_avx512 args;                                \
      case ::musiq::cpu::Isa::kAvx2: return name##_avx2 args;                                    \
      case ::musiq::cpu::Isa::kBaseline: break;                                                  \
    }                                                                                            \
    return name##_baseline args;                                                                 \
  }
