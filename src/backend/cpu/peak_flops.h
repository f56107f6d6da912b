// This machine's fp32 peak, measured: a tight loop of independent FMA chains on the widest vectors the build
// targets, one per thread. Benchmarks divide by it so "% of peak" is honest on any CPU.
#pragma once

namespace kakusan {

// GFLOP/s of `threads` threads running the FMA loop at once for about `seconds` each. Each thread is timed
// by its own CPU clock, so the figure is what the cores can do even when other processes share them.
double measure_peak_gflops(int threads, double seconds = 0.5);

// The vectors the loop uses: "AVX-512", "AVX2" or "scalar" (a lower bound: built without FMA).
const char* peak_vector_isa();

// GFLOP/s of one thread running AVX512_BF16 dot products (vdpbf16ps: 32 bf16 multiply-adds into 16 f32
// lanes) the same way, or 0 where the CPU lacks them (checked at run time; the loop is compiled for them
// whatever the build targets). Why it is measured: vdpbf16ps runs at half the FMA loop's rate on some CPUs
// (Intel's without AMX) and at twice it on others (AMD Zen 4/5), which decides whether the bf16 products
// (backend.h) are faster on bf16gemm or on the fp32 GEMMs (gemm.h's Bf16Gemm, docs/bf16.md).
double measure_bf16_dot_peak_gflops(double seconds = 0.5);

}  // namespace kakusan
