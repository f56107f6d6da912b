// Branch-free float math written so the compiler vectorises the loops that call it (no libm calls inside):
// exp, the activations built on it, and row softmax. Accuracy: a few ulp (exp), ~1e-7 relative (erf GELU).
#pragma once

#include <algorithm>
#include <bit>
#include <cstdint>

#include "backend/backend.h"

namespace kakusan::cpu {

// e^x for x in [-87.3, 88.3] (clamped outside, where the callers only need "tiny" or "huge").
inline float fast_exp(float x) {
  x = std::min(std::max(x, -87.3f), 88.3f);
  // x = n·ln2 + r, |r| <= ln2/2; round n with the 1.5·2^23 trick (exact without -ffast-math).
  const float n = (x * 1.44269504089f + 12582912.0f) - 12582912.0f;
  const float r = (x - n * 0.693359375f) + n * 2.12194440e-4f;  // ln2 split in a short high part + low part
  // Taylor series to degree 7: truncation error < 1e-8 on |r| <= 0.35.
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const float scale = std::bit_cast<float>(uint32_t(int32_t(n) + 127) << 23);
  return p * scale;
}

inline float silu(float x) { return x / (1.0f + fast_exp(-x)); }

inline float quick_gelu(float x) { return x / (1.0f + fast_exp(-1.702f * x)); }

// erfc(z) for z >= 0 with fractional error < 1.2e-7 (the Chebyshev fit of Numerical Recipes §6.2).
inline float erfc_nonneg(float z) {
  const float t = 1.0f / (1.0f + 0.5f * z);
  float p = 0.17087277f;
  p = p * t - 0.82215223f;
  p = p * t + 1.48851587f;
  p = p * t - 1.13520398f;
  p = p * t + 0.27886807f;
  p = p * t - 0.18628806f;
  p = p * t + 0.09678418f;
  p = p * t + 0.37409196f;
  p = p * t + 1.00002368f;
  p = p * t - 1.26551223f;
  return t * fast_exp(p - z * z);
}

// Exact (erf) GELU: x/2 · (1 + erf(x/√2)) = x/2 · erfc(-x/√2), evaluated through erfc so that the tail
// x << 0 keeps its relative accuracy.
inline float gelu(float x) {
  const float z = std::min(std::abs(x) * 0.70710678118654752f, 10.0f);
  const float e = erfc_nonneg(z);
  return 0.5f * x * (x >= 0.0f ? 2.0f - e : e);
}

inline float gelu_tanh(float x) {
  const float u = 0.7978845608028654f * (x + 0.044715f * x * x * x);
  const float tanh_u = 1.0f - 2.0f / (1.0f + fast_exp(2.0f * u));
  return 0.5f * x * (1.0f + tanh_u);
}

// y[i] = act(x[i]); x and y may be the same array.
void apply_activation(Activation act, const float* x, float* y, int64_t n);

// row[i] = e^(row[i] - shift) in place; returns the sum of the results (summed in float lanes, then double).
float exp_shifted_sum(float* row, int64_t n, float shift);

// In-place softmax of one row (max-subtracted, float32 like torch).
void softmax_row(float* row, int64_t n);

// One key tile of the transposed online softmax (Flash attention): `scores` is [keys, lanes] with row stride
// ld, one query per lane. Per lane: running_max takes the tile's max, rescale = e^(old max - new max), the
// scores become e^(score - new max) in place and tile_sum their float sum. With `probabilities` BF16 or F16
// (attention in reduced precision, backend/precision.h), running_max holds the shift's exponent k instead: it
// takes softmax_shift_exponent(tile max), rescale = 2^(old k - new k) exactly, and the scores become
// e^(s - k·ln 2) rounded to that precision (tile_sum sums them unrounded). With `pairs` (BF16 only) the rounded
// probabilities go there instead, as bf16 pairs of keys (the layout of accumulate_pair_products), and `scores`
// keeps the shifted scores.
void column_softmax_step(float* scores, int64_t keys, int64_t lanes, int64_t ld, float* running_max, float* rescale,
                         float* tile_sum, DType probabilities = DType::F32, uint32_t* pairs = nullptr);

// ot[e·ld + j] += Σ_m p[m·ld + j] · v[m·dv + e] for e < dv, lanes j < lanes and m < pairs, where p's and v's
// words each hold two bf16 that multiply pairwise: keys 2m (the low halves) and 2m + 1 (the high ones; zero past
// an odd last key). Products exact, summed in f32 (vdpbf16ps where the compiler targets AVX512_BF16). Flash attention's
// P·V for bf16 attention on native bf16 products: probabilities [keys/2][queries] (column_softmax_step), values
// [keys/2][value_dim].
void accumulate_pair_products(const uint32_t* p, int64_t ld, const uint32_t* v, int64_t dv, int64_t pairs,
                              int64_t lanes, float* ot);

// Sum and max of a row with several independent lanes so the loops vectorise without -ffast-math.
float row_max(const float* x, int64_t n);
// Sum in double (float lanes over short blocks, blocks added in double).
double row_sum(const float* x, int64_t n);
// Σ (x - mean)²
double row_sum_sq_dev(const float* x, int64_t n, float mean);

}  // namespace kakusan::cpu
