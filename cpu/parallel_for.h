// The CPU ops' parallel loops (OpenMP), free inside another parallel region.
#pragma once
#include <omp.h>

#include <cstdint>

namespace musiq::cpu {

// How parallel_for() hands out iterations: equal blocks, or one at a time as threads free
// up (for iterations of uneven cost, or a thread slowed by another process).
enum class Schedule { kStatic, kDynamic };

// The threads a parallel_for() called here shares its iterations among: one inside a
// parallel region (such as the stem's tiles), where nested regions get one thread.
inline int loop_threads() { return omp_in_parallel() ? 1 : omp_get_max_threads(); }

// body(i) for each i in [0, count), shared by loop_threads() threads. Where only one would
// take part it runs on the calling thread without a region: entering one, even of one
// thread, costs a futex call (0.3-0.6 us).
template <Schedule kSchedule = Schedule::kStatic, typename Body>
void parallel_for(int64_t count, const Body& body) {
  if (count <= 1 || loop_threads() == 1) {
    for (int64_t i = 0; i < count; ++i) body(i);
  } else if constexpr (kSchedule == Schedule::kDynamic) {
#pragma omp parallel for schedule(dynamic)
    for (int64_t i = 0; i < count; ++i) body(i);
  } else {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < count; ++i) body(i);
  }
}

}  // namespace musiq::cpu
