// Developer API: what `musiq preprocess` needs to check the engine against its TensorFlow
// reference (tools/tf-preprocess-parity). Not part of the public API (engine/musiq.h):
// no stability promise, and nothing here is needed to score images.
#pragma once
#include <cstdint>
#include <string>

namespace musiq {

struct PreprocessDump {
  int64_t tokens = 0;       // rows written, padding included
  int64_t real_tokens = 0;  // rows that come from the image
};

// Decodes the image and writes to an HDF5 file its pixels ("pixels", uint8 HxWx3) and the
// model's input tokens in the official layout, padding included ("patches", "spatial",
// "scale_id", "mask"), made with the official preprocessing settings. Throws musiq::Error
// naming the file at fault; leaves no partial output file.
PreprocessDump write_preprocess_dump(const std::string& image_path, const std::string& output_path);

}  // namespace musiq
