// The number of threads the CPU ops use: their OpenMP loops and OpenBLAS alike.
#pragma once

namespace musiq::cpu {

// Threads the calling thread's CPU ops start from now on (at least 1). Both OpenMP and
// OpenBLAS are told: OpenBLAS 0.3.21 stops following omp_set_num_threads once it has
// seen one thread, so setting OpenMP alone would never come back up from 1.
void set_threads(int threads);

// The most threads the ops may use: OpenMP's count when the process started
// (OMP_NUM_THREADS, else one per CPU this process may run on).
int max_threads();

}  // namespace musiq::cpu
