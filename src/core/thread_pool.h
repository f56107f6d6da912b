// One process-wide pool of worker threads for kakusan's own kernels. BLAS calls run on the calling thread's
// library threads while our workers are idle, so the machine is never oversubscribed.
#pragma once

#include <cstdint>
#include <functional>

namespace kakusan {

// Number of threads kernels may use (default: hardware concurrency).
int num_threads();
// Sets our pool's size and the BLAS library's thread count together.
void set_num_threads(int n);

// Runs fn(begin, end) over [0, n) split into contiguous chunks across the pool; returns when all are done.
// `grain` is the smallest chunk worth a thread. Nested calls run inline.
void parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn, int64_t grain = 1);

}  // namespace kakusan
