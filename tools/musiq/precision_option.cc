#include "tools/musiq/precision_option.h"

#include "engine/musiq.h"

namespace musiq::cli {

CLI::Option* add_precision_option(CLI::App& command, std::string& precision) {
  return command
      .add_option("--precision", precision,
                  "Arithmetic: fp32 (exact, the default), bf16 (bfloat16 products, CPU; its "
                  "error: docs/precision.md) or tf32 (GPU only)")
      ->check(CLI::IsMember(kPrecisionNames))
      ->capture_default_str();
}

}  // namespace musiq::cli
