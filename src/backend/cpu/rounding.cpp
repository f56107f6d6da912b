#include "backend/cpu/rounding.h"

#include <algorithm>
#include <bit>
#include <cstring>

#include "core/half.h"

namespace kakusan::cpu {
namespace {

// f32_to_bf16's bits (in the high half), in a form the compiler vectorises: add half an ulp of bf16 (minus one
// when the kept part is even, for ties to even), then clear the low 16 bits; a NaN stays a (quiet) NaN.
inline uint32_t bf16_high_bits(float f) {
  const uint32_t x = std::bit_cast<uint32_t>(f);
  const uint32_t rounded = (x + 0x7fffu + ((x >> 16) & 1u)) & 0xffff0000u;
  const uint32_t nan = (x | 0x00400000u) & 0xffff0000u;
  return (x & 0x7fffffffu) > 0x7f800000u ? nan : rounded;
}

void round_bf16(const float* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = std::bit_cast<float>(bf16_high_bits(src[i]));
}

// Through the bulk f16 conversions (F16C where compiled in), a stack block at a time.
void round_f16(const float* src, float* dst, int64_t n) {
  constexpr int64_t kBlock = 256;
  uint16_t half[kBlock];
  for (int64_t i = 0; i < n; i += kBlock) {
    const size_t count = size_t(std::min(kBlock, n - i));
    convert_f32_to_f16(src + i, half, count);
    convert_f16_to_f32(half, dst + i, count);
  }
}

}  // namespace

void round_floats(DType precision, const float* src, float* dst, int64_t n) {
  switch (precision) {
    case DType::BF16: round_bf16(src, dst, n); return;
    case DType::F16: round_f16(src, dst, n); return;
    default:
      if (src != dst) std::memcpy(dst, src, size_t(n) * sizeof(float));
      return;
  }
}

void round_to_bf16(const float* src, uint16_t* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = uint16_t(bf16_high_bits(src[i]) >> 16);
}

}  // namespace kakusan::cpu
