"""tf.image.resize(image, [h, w], method="bilinear", antialias=True) in NumPy, for tests.

Written from TensorFlow's documented algorithm (ScaleAndTranslate with the triangle
kernel, scale = out / in, translation 0; the kernel widened by the factor of a
downscale; weights normalised per output pixel), in float32 as TensorFlow computes it:
rows (height) first into a float32 intermediate, then columns, each output summed tap
by tap in source order. Shares nothing with the C++ (base/resize_plan.cc, cpu/resize.cc).

`to_uint8` is musiq's --target-size rounding: round half to even, clip to 0..255.
"""
import math

import numpy as np

F = np.float32


def _axis_weights(in_size, out_size):
    """[out_size, in_size] float32 weights; row x holds output pixel x's taps."""
    scale = F(out_size) / F(in_size)
    inv_scale = F(1.0 / float(scale))
    kernel_scale = max(inv_scale, F(1.0))
    one_over_kernel_scale = F(1.0) / kernel_scale
    reach = F(1.0) * kernel_scale
    weights = np.zeros((out_size, in_size), dtype=F)
    for x in range(out_size):
        sample = (F(x) + F(0.5)) * inv_scale
        if sample < 0 or sample > F(in_size):
            continue
        start = int(math.ceil(sample - reach - F(0.5)))
        end = int(math.floor(sample + reach - F(0.5)))
        start = min(max(start, 0), in_size - 1)
        end = min(max(end, 0), in_size - 1) + 1
        taps = []
        for s in range(start, end):
            d = abs((F(s) + F(0.5) - sample) * one_over_kernel_scale)
            taps.append(F(1.0) - d if d < F(1.0) else F(0.0))
        total = F(0.0)
        for w in taps:
            total = F(total + w)
        if abs(total) >= 1000.0 * np.finfo(F).tiny:
            inv_total = F(1.0) / total
            for t, w in enumerate(taps):
                weights[x, start + t] = F(w * inv_total)
    return weights


def _resample_axis0(values, weights):
    """out[x] = sum over the taps of weights[x, s] * values[s], added in source order."""
    out = np.zeros((weights.shape[0],) + values.shape[1:], dtype=F)
    for x in range(weights.shape[0]):
        acc = np.zeros(values.shape[1:], dtype=F)
        for s in np.nonzero(weights[x])[0]:
            acc = acc + weights[x, s] * values[s]
        out[x] = acc
    return out


def resize_bilinear_antialias(image, out_h, out_w):
    """float32 [out_h, out_w, C] from a uint8 or float [H, W, C] image."""
    pixels = np.asarray(image).astype(F)
    rows = _resample_axis0(pixels, _axis_weights(pixels.shape[0], out_h))
    cols = _resample_axis0(rows.transpose(1, 0, 2), _axis_weights(pixels.shape[1], out_w))
    return cols.transpose(1, 0, 2)


def to_uint8(resized):
    return np.clip(np.round(resized), 0, 255).astype(np.uint8)
