// What `--device auto` asks of the GPU before it trusts it with a run: the score of one
// small synthetic image must agree with the CPU path's. CUDA builds only.
#pragma once
#include "engine/gpu_model.h"
#include "engine/weights.h"

namespace musiq {

// Scores a fixed 64x48 gradient image (the official scales make it ~200 tokens) with
// `gpu` (preprocessed on the device) and with a CpuModel built from `file` for the occasion (a few hundred ms on a
// small CPU), and throws musiq::Error saying both scores when they differ by more than
// 1e-4 x max(|cpu score|, 1), or when the GPU's is not finite.
void check_gpu_against_cpu(GpuModel& gpu, const WeightsFile& file);

}  // namespace musiq
