#include "backend/cpu/peak_flops.h"

#include "backend/cpu/intrinsics.h"

#include <algorithm>
#include <cstdint>
#include <thread>
#include <vector>

#include "core/cpu_features.h"
#include "core/cpu_time.h"

namespace kakusan {
namespace {

// GFLOP/s of one thread running independent FMA chains for about `seconds` of its own CPU time.
double fma_peak_one_thread(double seconds) {
#if defined(__AVX512F__)
  using V = __m512;
  constexpr int kWidth = 16;
  auto fma = [](V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); };
  auto splat = [](float x) { return _mm512_set1_ps(x); };
  auto sum = [](V v) { return _mm512_reduce_add_ps(v); };
#elif defined(__FMA__)
  using V = __m256;
  constexpr int kWidth = 8;
  auto fma = [](V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); };
  auto splat = [](float x) { return _mm256_set1_ps(x); };
  auto sum = [](V v) {
    float f[8];
    _mm256_storeu_ps(f, v);
    return f[0] + f[1] + f[2] + f[3] + f[4] + f[5] + f[6] + f[7];
  };
#else  // no FMA compiled in (KAKUSAN_NATIVE=OFF): scalar multiply-adds, a lower bound of the peak
  using V = float;
  constexpr int kWidth = 1;
  auto fma = [](V a, V b, V c) { return a * b + c; };
  auto splat = [](float x) { return x; };
  auto sum = [](V v) { return v; };
#endif
  constexpr int kChains = 12;  // enough independent chains to cover FMA latency x throughput
  V acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = splat(float(i) * 1e-3f);
  const V a = splat(0.999999f), b = splat(1e-7f);
  const double start = thread_cpu_seconds();
  int64_t iterations = 0;
  double elapsed = 0;
  while ((elapsed = thread_cpu_seconds() - start) < seconds) {
    for (int rep = 0; rep < 100000; ++rep)
      for (int i = 0; i < kChains; ++i) acc[i] = fma(acc[i], a, b);
    iterations += 100000;
  }
  float total = 0;
  for (int i = 0; i < kChains; ++i) total += sum(acc[i]);
  volatile float sink = total;  // keeps the loop from being optimised away
  (void)sink;
  return double(iterations) * kChains * kWidth * 2 / elapsed / 1e9;
}

#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx512f,avx512bf16"))) double dpbf16_peak_one_thread(double seconds) {
  constexpr int kChains = 12;
  __m512 acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = _mm512_set1_ps(float(i) * 1e-3f);
  const __m512bh a = (__m512bh)_mm512_set1_epi16(0x3f80), b = (__m512bh)_mm512_set1_epi16(0x3380);  // 1, ~6e-8
  const double start = thread_cpu_seconds();
  int64_t iterations = 0;
  double elapsed = 0;
  while ((elapsed = thread_cpu_seconds() - start) < seconds) {
    for (int rep = 0; rep < 100000; ++rep)
      for (int i = 0; i < kChains; ++i) acc[i] = _mm512_dpbf16_ps(acc[i], a, b);
    iterations += 100000;
  }
  float total = 0;
  for (int i = 0; i < kChains; ++i) total += _mm512_reduce_add_ps(acc[i]);
  volatile float sink = total;
  (void)sink;
  return double(iterations) * kChains * 32 * 2 / elapsed / 1e9;
}
#endif

}  // namespace

double measure_bf16_dot_peak_gflops(double seconds) {
#if defined(__x86_64__) && defined(__GNUC__)
  if (cpu_has_avx512_bf16()) return dpbf16_peak_one_thread(seconds);
#endif
  (void)seconds;
  return 0;
}

double measure_peak_gflops(int threads, double seconds) {
  threads = std::max(threads, 1);
  std::vector<double> rates(static_cast<size_t>(threads));
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t)
    workers.emplace_back([&rates, t, seconds] { rates[size_t(t)] = fma_peak_one_thread(seconds); });
  for (auto& w : workers) w.join();
  double total = 0;
  for (double r : rates) total += r;
  return total;
}

const char* peak_vector_isa() {
#if defined(__AVX512F__)
  return "AVX-512";
#elif defined(__FMA__)
  return "AVX2";
#else
  return "scalar";
#endif
}

}  // namespace kakusan
