// TensorFlow ScaleAndTranslate resampling plans for one axis: which source pixels feed
// each output pixel, and with what weights. Computed on the host, used by the CPU resize
// and uploaded for the GPU one.
#pragma once
#include <cstdint>
#include <vector>

namespace musiq {

// Taps per output pixel: 2 * ceil(1.5) + 1 for the Gaussian's radius of 1.5 (antialias
// off, so the kernel is never widened), fewer only where the input has fewer pixels.
inline constexpr int kGaussianSpan = 5;

struct ResizePlan {
  int in_size = 0;
  int out_size = 0;
  int span = 0;                 // taps per output pixel, at most in_size (Gaussian: kGaussianSpan)
  std::vector<int32_t> starts;  // [out_size] first source pixel
  std::vector<float> weights;   // [out_size * span] zero past the real taps
};

// Both mirror ComputeSpansCore in tensorflow/core/kernels/image/scale_and_translate_op.cc
// with scale = float32(out) / float32(in), translate 0, in float32 arithmetic.
// The Gaussian kernel, antialias off: the official multi-scale preprocessing.
ResizePlan gaussian_resize_plan(int in_size, int out_size);
// The triangle kernel, antialias on (widened by the factor of a downscale): what
// tf.image.resize(method="bilinear", antialias=True) computes. Span 3 when enlarging,
// 2 * ceil(in / out) + 1 when shrinking (at most in_size).
ResizePlan bilinear_antialias_resize_plan(int in_size, int out_size);

}  // namespace musiq
