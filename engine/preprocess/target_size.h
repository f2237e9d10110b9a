// `--target-size`: an image resized to one display size before it is scored, for users who
// want every photo judged at the same size (MUSIQ itself is made to score native
// resolution). The method is TensorFlow's, so that it can be checked against TensorFlow:
//   tf.cast(tf.clip_by_value(tf.round(
//       tf.image.resize(image, [height, width], method="bilinear", antialias=True)),
//       0, 255), tf.uint8)
// (a triangle filter widened by the factor of a downscale; rounded half to even).
#pragma once
#include "engine/decode/image.h"

namespace musiq {

// Throws musiq::Error unless the size is unset (0 x 0) or both sides are at least 1.
void check_target_size(const TargetSize& target);

// The image at the target size (both sides >= 1, else musiq::Error) by the method above;
// the decoder's warning is kept.
Image resize_to_target(const Image& image, const TargetSize& target);

}  // namespace musiq
