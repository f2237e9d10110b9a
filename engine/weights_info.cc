// inspect_weights (engine/musiq.h): a weights file's details for `musiq info`.
#include "engine/musiq.h"
#include "weights/weights.h"

namespace musiq {

WeightsFileInfo inspect_weights(const std::string& path) {
  const WeightsFile file = load_weights(path);  // validates everything, throws musiq::Error
  return {{file.path, file.variant, file.is_random(), file.config, file.parameter_count()},
          file.source,
          static_cast<int64_t>(file.params.size())};
}

}  // namespace musiq
