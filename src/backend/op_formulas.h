// The per-element formulas of the small ops that reproduce torch's float32 roundings, written once and used
// by both the reference loops and the CPU kernels, so the two can differ in loop structure but never in the
// arithmetic that the goldens depend on.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

// Every product and sum rounded on its own, as torch's separate ops: no fused multiply-adds here even
// where the target has them (GCC would contract across statements). clang, which builds the fuzzers, has no
// such attribute and needs none: it contracts only within one expression, and each product here is its own.
#if defined(__clang__)
#define KK_NO_FMA
#else
#define KK_NO_FMA __attribute__((optimize("fp-contract=off")))
#endif

namespace kakusan::formula {

// One row of diffusers' get_timestep_embedding: every step rounds to float32 where torch computes in
// float32; sin/cos are taken in double of the float argument (correctly rounded, which torch's vectorised
// float sin/cos match to an ulp). diffusers builds [sin | cos] and swaps the halves when flip_sin_to_cos.
KK_NO_FMA inline void timestep_row(float t, int64_t dim, bool flip_sin_to_cos, int freq_shift, float* row) {
  const int64_t half = dim / 2;
  const float log_max_period = float(-std::log(10000.0));
  for (int64_t i = 0; i < half; ++i) {
    const float exponent = (log_max_period * float(i)) / float(half - freq_shift);
    const float arg = t * std::exp(exponent);
    const float s = float(std::sin(double(arg))), c = float(std::cos(double(arg)));
    row[flip_sin_to_cos ? half + i : i] = s;
    row[flip_sin_to_cos ? i : half + i] = c;
  }
  if (dim % 2 == 1) row[dim - 1] = 0.0f;
}

// torch's nearest: source index floor(dst · scale) with scale = in / out in float32, clamped.
inline int64_t nearest_source(int64_t dst, float scale, int64_t in) {
  return std::min(int64_t(std::floor(float(dst) * scale)), in - 1);
}
inline float nearest_scale(int64_t in, int64_t out) { return float(in) / float(out); }

// mean + std · noise with std = exp(logvar / 2), logvar clamped to [-30, 20] (DiagonalGaussianDistribution).
KK_NO_FMA inline float gaussian_sample(float mean, float logvar, float noise) {
  const float std = std::exp(0.5f * std::clamp(logvar, -30.0f, 20.0f));
  const float spread = std * noise;
  return mean + spread;
}

// uncond + g · (text − uncond), rounded after each operation.
KK_NO_FMA inline float guided(float uncond, float text, float guidance) {
  const float difference = text - uncond;
  const float scaled = guidance * difference;
  return uncond + scaled;
}

// The weights of blend row (or column) k of `extent`: a fades out, b fades in (torch: a·(1 - k/e) + b·(k/e)
// with the ratio in double, then float32).
inline float blend_weight_b(int64_t k, int64_t extent) { return float(double(k) / double(extent)); }
inline float blend_weight_a(int64_t k, int64_t extent) { return float(1.0 - double(k) / double(extent)); }
KK_NO_FMA inline float blend(float a, float wa, float b, float wb) {
  const float pa = a * wa, pb = b * wb;
  return pa + pb;
}

}  // namespace kakusan::formula
