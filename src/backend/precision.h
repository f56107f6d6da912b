// The precision rule of backend.h ("products take the precision of their weight"), as the small functions
// every backend shares, so the reference and the fast kernels round the same operands the same way.
#pragma once

#include <cmath>

#include "core/half.h"
#include "core/tensor.h"

namespace kakusan {

// The precision of linear's and conv2d's products: bf16 for a bf16 weight (the activation operand is
// rounded to it); f16 weights are widened exactly on the CPU (no f16 dot products there), so f32 otherwise.
inline DType product_precision(const TensorView& weight) {
  return weight.dtype == DType::BF16 ? DType::BF16 : DType::F32;
}

// x rounded to `precision` (round-to-nearest-even) and widened back; F32 leaves it as it is.
inline float round_to(DType precision, float x) {
  switch (precision) {
    case DType::BF16: return bf16_to_f32(f32_to_bf16(x));
    case DType::F16: return f16_to_f32(f32_to_f16(x));
    default: return x;
  }
}

// Attention in reduced precision rounds its softmax probabilities before P·V. A tiled (flash) softmax only
// knows a running max, and rounding does not commute with rescaling by e^(old max − new max) — but it does
// with a power of two. So in reduced precision the scores are shifted by k·ln 2, k = ceil(max · log2 e) (the
// max rounded up to a power of two): every shift a tile can have differs from the whole row's by a power of
// two, the rounded probabilities e^(s − k·ln 2) are the same numbers however the row is tiled, and only
// the final division by their (unrounded) sum normalises them. k is kept as an integer-valued float.
inline float softmax_shift_exponent(float max) { return std::ceil(max * 1.44269504088896341f); }
constexpr float kLn2 = 0.693147180559945309f;

}  // namespace kakusan
