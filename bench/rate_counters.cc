#include "bench/rate_counters.h"

namespace musiq::bench {

void set_rate_counters(benchmark::State& state, double flops, double bytes) {
  if (flops > 0)
    state.counters["FLOP/s"] =
        benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["bytes/s"] =
      benchmark::Counter(bytes, benchmark::Counter::kIsIterationInvariantRate);
}

}  // namespace musiq::bench
