// CPU time consumed so far, in seconds (the benches' figure that holds up on a shared machine).
#pragma once

#include <ctime>

namespace kakusan {

namespace detail {
inline double clock_seconds(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}
}  // namespace detail

// By every thread of the process.
inline double process_cpu_seconds() { return detail::clock_seconds(CLOCK_PROCESS_CPUTIME_ID); }
// By the calling thread.
inline double thread_cpu_seconds() { return detail::clock_seconds(CLOCK_THREAD_CPUTIME_ID); }

}  // namespace kakusan
