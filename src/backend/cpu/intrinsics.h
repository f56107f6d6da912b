// <immintrin.h> for the kernels written with AVX-512 intrinsics. GCC 12 reports its own AVX-512 intrinsics'
// _mm512_undefined_* results as uninitialised (a known false positive of that release); silenced for these
// headers only.
#pragma once

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#if !defined(__clang__)  // a GCC-only warning (clang, which builds the fuzzers, has no such group)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>
#pragma GCC diagnostic pop

#if defined(__AVX512F__)
#include <cstdint>

namespace kakusan::cpu {
// The first `count` (0..16) of 16 lanes: the mask of a tail shorter than a vector.
inline __mmask16 first_lanes(int64_t count) { return __mmask16((1u << count) - 1u); }
}  // namespace kakusan::cpu
#endif
