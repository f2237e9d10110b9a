// The number of threads the CPU ops use (their OpenMP loops, the GEMM's included).
#pragma once

namespace musiq::cpu {

// Threads the calling thread's CPU ops start from now on, within [1, max_threads()].
void set_threads(int threads);

// The most threads the ops may use: OpenMP's count when the process started
// (OMP_NUM_THREADS, else one per CPU this process may run on).
int max_threads();

}  // namespace musiq::cpu
