// The CPU side of `musiq info`: what the CPU path runs on.
#include <cblas.h>  // OpenBLAS: openblas_get_config

#include <fstream>
#include <string>
#include <thread>

#include "cpu/bf16_gemm.h"
#include "cpu/isa.h"
#include "cpu/threads.h"
#include "engine/device.h"

namespace musiq {
namespace {

std::string cpu_model_name() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) != 0) continue;
    const size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    const size_t start = line.find_first_not_of(" \t", colon + 1);
    return start == std::string::npos ? "" : line.substr(start);
  }
  return "";
}

}  // namespace

CpuInfo query_cpu_info() {
  CpuInfo info;
  info.model = cpu_model_name();
  info.hardware_threads = static_cast<int>(std::thread::hardware_concurrency());
  info.threads = cpu::max_threads();
  info.kernels = cpu::isa_name(cpu::cpu_isa());
  const char* config = openblas_get_config();
  info.blas = config ? config : "OpenBLAS";  // e.g. "OpenBLAS 0.3.21 ... USE_OPENMP ..."
  info.bf16_kernel = cpu::bf16::kernel_name(cpu::bf16::kernel());
  return info;
}

}  // namespace musiq
