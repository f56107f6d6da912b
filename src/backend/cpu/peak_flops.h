// This machine's fp32 peak, measured: a tight loop of independent FMA chains on the widest vectors the build
// targets, one per thread. Benchmarks divide by it so "% of peak" is honest on any CPU.
#pragma once

namespace kakusan {

// GFLOP/s of `threads` threads running the FMA loop at once for about `seconds` each. Each thread is timed
// by its own CPU clock, so the figure is what the cores can do even when other processes share them.
double measure_peak_gflops(int threads, double seconds = 0.5);

// The vectors the loop uses: "AVX-512", "AVX2" or "scalar" (a lower bound: built without FMA).
const char* peak_vector_isa();

}  // namespace kakusan
