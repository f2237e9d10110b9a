// musiq info [--weights FILE]: one JSON object describing the build, the processors
// found (CPU; GPU with its memory, compute capability, driver, runtime, cuBLAS and cuDNN
// versions, or why there is none), which official models are installed, and, for a
// weights file, its variant, config, parameter count and SHA-256.
#include <openssl/evp.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <vector>

#include "engine/musiq.h"
#include "tools/musiq/commands.h"

#ifndef MUSIQ_VERSION
#define MUSIQ_VERSION "unknown"
#endif

namespace musiq::cli {
namespace {

struct InfoOptions {
  std::string weights;
};

// SHA-256 of a file's bytes, lower-case hex (OpenSSL's libcrypto).
std::string file_sha256(const std::string& path) {
  std::unique_ptr<FILE, int (*)(FILE*)> file(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!file) throw Error(path + ": cannot open file for reading (" + std::strerror(errno) + ")");
  std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1)
    throw Error("cannot start a SHA-256 digest (OpenSSL)");
  std::vector<unsigned char> block(1 << 20);
  size_t n = 0;
  while ((n = std::fread(block.data(), 1, block.size(), file.get())) > 0)
    if (EVP_DigestUpdate(ctx.get(), block.data(), n) != 1)
      throw Error("SHA-256 digest failed (OpenSSL)");
  if (std::ferror(file.get())) throw Error(path + ": read error");
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(ctx.get(), digest, &len) != 1)
    throw Error("SHA-256 digest failed (OpenSSL)");
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out += hex[digest[i] >> 4];
    out += hex[digest[i] & 15];
  }
  return out;
}

// 13000 -> "13.0", 12040 -> "12.4"; 0 -> null.
nlohmann::json cuda_version(int v) {
  if (v <= 0) return nullptr;
  return std::to_string(v / 1000) + "." + std::to_string((v % 1000) / 10);
}

nlohmann::json text_or_null(const std::string& s) {
  return s.empty() ? nlohmann::json(nullptr) : nlohmann::json(s);
}

nlohmann::json gpu_json() {
  const GpuInfo g = query_gpu_info();
  nlohmann::json devices = nlohmann::json::array();
  for (const GpuDeviceInfo& d : g.devices)
    devices.push_back({{"index", d.index},
                       {"name", d.name},
                       {"memory_bytes", d.memory_bytes},
                       {"memory_gib", std::round(d.memory_bytes / 1073741824.0 * 10) / 10},
                       {"compute_capability", std::to_string(d.compute_major) + "." +
                                                  std::to_string(d.compute_minor)},
                       {"multiprocessors", d.multiprocessors}});
  auto lib = [](const LibraryVersion& v) {
    return nlohmann::json{{"header", text_or_null(v.header)},
                          {"library", text_or_null(v.library)}};
  };
  nlohmann::json j = {{"cuda_build", g.cuda_build},
                      {"available", !g.devices.empty()},
                      {"problem", text_or_null(g.problem)},
                      {"devices", devices}};
  if (g.cuda_build) {
    j["driver_version"] = cuda_version(g.driver_version);
    j["runtime_version"] = cuda_version(g.runtime_version);
    j["cublas"] = lib(g.cublas);
    j["cudnn"] = lib(g.cudnn);
  }
  return j;
}

nlohmann::json weights_json(const std::string& path) {
  const WeightsFileInfo w = inspect_weights(path);  // validates everything
  return {{"path", path},
          {"bytes", static_cast<int64_t>(std::filesystem::file_size(path))},
          {"sha256", file_sha256(path)},
          {"variant", w.model.variant},
          {"random_weights", w.model.random_weights},
          {"config", nlohmann::json::parse(model_config_to_json(w.model.config))},
          {"tensors", w.tensors},
          {"parameter_count", w.model.parameter_count},
          {"source", w.source}};
}

int run_info(const InfoOptions& o) {
  const CpuInfo cpu = query_cpu_info();
  nlohmann::json out;
  out["musiq_version"] = MUSIQ_VERSION;
  out["cpu"] = {{"model", text_or_null(cpu.model)},
                {"hardware_threads", cpu.hardware_threads},
                {"threads", cpu.threads},
                {"blas", cpu.blas},
                {"cpu_kernels", cpu.kernels},
                {"bf16_kernel", cpu.bf16_kernel}};
  out["gpu"] = gpu_json();
  for (DeviceKind device : {DeviceKind::kCpu, DeviceKind::kCuda}) {
    nlohmann::json names = nlohmann::json::array();
    for (Precision p : precisions_on(device)) names.push_back(precision_name(p));
    out["precisions"][device_name(device)] = names;
  }
  const DeviceChoice automatic = select_device(DeviceKind::kAuto);
  out["device_auto"] = {{"device", automatic.name},
                        {"reason", text_or_null(automatic.fallback_reason)}};
  out["gpu_available"] = gpu_available(automatic);
  nlohmann::json models;
  for (const std::string& model : kModelNames) {
    try {
      models[model] = locate_weights(model, "");
    } catch (const Error&) {
      models[model] = nullptr;  // not installed: `musiq score` says how to get it
    }
  }
  out["models"] = models;
  out["weights_cache"] = weights_cache_dir();
  if (!o.weights.empty()) out["weights"] = weights_json(o.weights);
  std::cout << out.dump(2) << "\n";
  return 0;
}

}  // namespace

Command add_info_command(CLI::App& app) {
  auto o = std::make_shared<InfoOptions>();
  CLI::App* cmd = app.add_subcommand(
      "info", "Show the devices found and, with --weights, a weights file's details (JSON)");
  cmd->add_option("--weights", o->weights,
                  "Weights file (HDF5): variant, config, parameter count, SHA-256");
  return [o] { return run_info(*o); };
}

}  // namespace musiq::cli
