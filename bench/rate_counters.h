// The FLOP/s and bytes/s counters of a bench/op_rows.h row, for both devices' bench files.
#pragma once
#include <benchmark/benchmark.h>

namespace musiq::bench {

// The FLOP/s (when flops > 0) and bytes/s counters of a row, per iteration.
void set_rate_counters(benchmark::State& state, double flops, double bytes);

}  // namespace musiq::bench
