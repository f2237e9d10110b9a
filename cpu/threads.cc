#include "cpu/threads.h"

#include <omp.h>

#include <algorithm>

namespace musiq::cpu {

void set_threads(int threads) {
  threads = std::clamp(threads, 1, max_threads());
  if (threads != omp_get_max_threads()) omp_set_num_threads(threads);
}

int max_threads() {
  static const int at_start = omp_get_max_threads();
  return at_start;
}

}  // namespace musiq::cpu
