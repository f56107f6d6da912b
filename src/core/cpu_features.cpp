#include "core/cpu_features.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

namespace kakusan {

bool cpu_has_avx512_bf16() {
#if defined(__x86_64__) || defined(__i386__)
  static const bool has = __builtin_cpu_supports("avx512bf16");
  return has;
#else
  return false;
#endif
}

bool cpu_has_fast_bf16_products() {
#if defined(__x86_64__) || defined(__i386__)
  static const bool fast = [] {
    if (!cpu_has_avx512_bf16()) return false;
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    const bool amx_bf16 = __get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx) && (edx & (1u << 22)) != 0;
    return __builtin_cpu_is("amd") || amx_bf16;
  }();
  return fast;
#else
  return false;
#endif
}

}  // namespace kakusan
