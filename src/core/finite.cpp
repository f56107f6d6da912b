#include "core/finite.h"

#include <cstring>

namespace kakusan {
namespace {

// Bit patterns: `exponent` selects the exponent field, `mantissa` the mantissa field.
template <typename Bits>
NonFiniteCount count_bits(const void* data, int64_t n, Bits exponent, Bits mantissa) {
  NonFiniteCount count;
  const auto* p = static_cast<const unsigned char*>(data);
  for (int64_t i = 0; i < n; ++i) {
    Bits bits;
    std::memcpy(&bits, p + i * int64_t(sizeof(Bits)), sizeof(Bits));  // any alignment
    if ((bits & exponent) != exponent) continue;
    if ((bits & mantissa) != 0)
      ++count.nan;
    else
      ++count.inf;
  }
  return count;
}

}  // namespace

NonFiniteCount count_non_finite(const TensorView& v) {
  KK_ASSERT(v.is_contiguous());
  const int64_t n = v.numel();
  switch (v.dtype) {
    case DType::F32: return count_bits<uint32_t>(v.data, n, 0x7f800000u, 0x007fffffu);
    case DType::F16: return count_bits<uint16_t>(v.data, n, 0x7c00u, 0x03ffu);
    case DType::BF16: return count_bits<uint16_t>(v.data, n, 0x7f80u, 0x007fu);
    case DType::I64: return {};
  }
  return {};
}

}  // namespace kakusan
