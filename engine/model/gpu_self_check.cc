#include "engine/model/gpu_self_check.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "base/error.h"
#include "engine/model/cpu_model.h"
#include "engine/model/model_weights.h"
#include "engine/preprocess/preprocess.h"

namespace musiq {
namespace {

// Smooth ramps per channel: every patch differs, and no value sits on a rounding edge
// that could make the two paths' preprocessing differ (both use the same CPU code anyway).
Image gradient_image(int width, int height) {
  Image image;
  image.width = width;
  image.height = height;
  image.rgb.resize(size_t(width) * height * 3);
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x) {
      uint8_t* p = &image.rgb[(size_t(y) * width + x) * 3];
      p[0] = static_cast<uint8_t>(x * 255 / (width - 1));
      p[1] = static_cast<uint8_t>(y * 255 / (height - 1));
      p[2] = static_cast<uint8_t>((x + y) * 255 / (width + height - 2));
    }
  return image;
}

}  // namespace

void check_gpu_against_cpu(GpuModel& gpu, const WeightsFile& file, Precision precision) {
  // The GPU from the pixels (device preprocessing, as the scorer runs it), the CPU from
  // its own tokens: the check covers every stage.
  const Image image = gradient_image(64, 48);
  const float got = gpu.score_image(image);
  const float want =
      CpuModel(prepare_model_weights(file), precision).score(make_tokens(image, file.config));
  const float relative = precision == Precision::kFp32 ? 1e-4f : 2e-3f;
  const float tolerance = relative * std::max(std::fabs(want), 1.0f);
  if (!(std::fabs(got - want) <= tolerance))  // NaN fails too
    throw Error("the GPU failed its self-check: it scores a test image " + std::to_string(got) +
                " where the CPU scores " + std::to_string(want) + " (" + precision_name(precision) +
                ")" +
                " (please report this, with `musiq info`)");
}

}  // namespace musiq
