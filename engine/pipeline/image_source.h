// An ImageSource (a file, encoded bytes, pixels in memory) decoded and prepared for a model,
// under the same size and cost limits whatever its kind.
#pragma once
#include "engine/musiq.h"
#include "engine/pipeline.h"

namespace musiq {

// Throws musiq::Error naming source.name.
PreparedImagePtr prepare_source(const ImageSource& source, const ModelConfig& config,
                                const DecodeOptions& decode, DeviceKind device);

}  // namespace musiq
