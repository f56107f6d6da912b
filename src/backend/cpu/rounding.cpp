#include "backend/cpu/rounding.h"

#include <algorithm>
#include <bit>
#include <cstring>

#include "core/half.h"

namespace kakusan::cpu {
namespace {

// f32_to_bf16 then back, in a form the compiler vectorises: add half an ulp of bf16 (minus one when the kept
// part is even, for ties to even), then clear the low 16 bits; a NaN stays a (quiet) NaN.
void round_bf16(const float* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t x = std::bit_cast<uint32_t>(src[i]);
    const uint32_t rounded = (x + 0x7fffu + ((x >> 16) & 1u)) & 0xffff0000u;
    const uint32_t nan = (x | 0x00400000u) & 0xffff0000u;
    dst[i] = std::bit_cast<float>((x & 0x7fffffffu) > 0x7f800000u ? nan : rounded);
  }
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

}  // namespace kakusan::cpu
