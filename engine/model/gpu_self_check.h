// What `--device auto` asks of the GPU before it trusts it with a run: the score of one
// small synthetic image must agree with the CPU path's at the same precision. CUDA builds only.
#pragma once
#include "engine/model/gpu_model.h"
#include "weights/weights.h"

namespace musiq {

// Scores a fixed 64x48 gradient image (155 tokens at the official scales) with `gpu`
// (preprocessed on the device, at `precision`, the one `gpu` was made with) and with a
// CpuModel at that precision built from `file` for the occasion (about 0.2 s on two CPU
// cores in fp32: 86 ms to score, the rest to build it), and throws musiq::Error saying both
// scores when they differ by more than 1e-4 x max(|cpu score|, 1) in fp32, 2e-3 x that in
// bf16 or tf32 (the two devices round the same values, but a sum that differs in its last
// bit can move a rounding by a whole step), or when the GPU's is not finite.
void check_gpu_against_cpu(GpuModel& gpu, const WeightsFile& file, Precision precision);

}  // namespace musiq
