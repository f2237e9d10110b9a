#include "cpu/isa.h"

#include <atomic>
#include <cstdlib>
#include <string>

#include "base/error.h"

namespace musiq::cpu {
namespace {

constexpr Isa kAll[] = {Isa::kBaseline, Isa::kAvx2, Isa::kAvx512};

// -1 until the first cpu_isa() decides.
std::atomic<int> chosen{-1};

Isa from_environment() {
  const char* asked = std::getenv("MUSIQ_CPU_ISA");
  const Isa best = supported_isa();
  if (!asked || !*asked) return best;
  for (Isa isa : kAll) {
    if (asked != std::string(isa_name(isa))) continue;
    if (isa > best)
      throw Error(std::string("MUSIQ_CPU_ISA=") + asked + ": this CPU runs at most " +
                  isa_name(best));
    return isa;
  }
  throw Error(std::string("MUSIQ_CPU_ISA=") + asked +
              ": not an instruction set (use avx512, avx2 or baseline)");
}

}  // namespace

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::kAvx512: return "avx512";
    case Isa::kAvx2: return "avx2";
    case Isa::kBaseline: break;
  }
  return "baseline";
}

Isa supported_isa() {
#if defined(__x86_64__) && defined(__GNUC__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
    return Isa::kAvx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::kAvx2;
#endif
  return Isa::kBaseline;
}

Isa cpu_isa() {
  int isa = chosen.load(std::memory_order_relaxed);
  if (isa < 0) {
    isa = static_cast<int>(from_environment());
    chosen.store(isa, std::memory_order_relaxed);
  }
  return static_cast<Isa>(isa);
}

void set_cpu_isa(Isa isa) {
  if (isa > supported_isa())
    throw Error(std::string("the CPU kernels cannot run ") + isa_name(isa) +
                ": this CPU runs at most " + isa_name(supported_isa()));
  chosen.store(static_cast<int>(isa), std::memory_order_relaxed);
}

}  // namespace musiq::cpu
