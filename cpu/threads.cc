#include "cpu/threads.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>

namespace musiq::cpu {

void set_threads(int threads) {
  threads = std::clamp(threads, 1, max_threads());
  if (threads == omp_get_max_threads() && threads == openblas_get_num_threads()) return;
  openblas_set_num_threads(threads);  // sets OpenMP's count too
  omp_set_num_threads(threads);
}

int max_threads() {
  static const int at_start = omp_get_max_threads();
  return at_start;
}

}  // namespace musiq::cpu
