// Counting NaN and infinite values in a tensor (kakusan inspect --check-weights): a downloaded checkpoint
// with a few broken weights otherwise only shows up as black or noisy images.
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace kakusan {

struct NonFiniteCount {
  int64_t nan = 0;
  int64_t inf = 0;
  bool any() const { return nan + inf > 0; }
};

// Counts of a contiguous f32, f16 or bf16 view, read from the bits (an exponent of all ones is NaN or
// infinity, by the mantissa); integer views have none.
NonFiniteCount count_non_finite(const TensorView& v);

}  // namespace kakusan
