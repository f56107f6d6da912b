#include "backend/cpu/vec_math.h"
#include "backend/precision.h"
#include "core/half.h"

#if defined(__AVX512F__)
#include "backend/cpu/intrinsics.h"
#endif

#include <cmath>
#include <limits>

namespace kakusan::cpu {
namespace {
constexpr int kLanes = 16;
constexpr int64_t kBlock = 1024;  // float lanes sum at most this many elements before joining the double total
}  // namespace

void apply_activation(Activation act, const float* x, float* y, int64_t n) {
  switch (act) {
    case Activation::None:
      if (x != y) std::copy(x, x + n, y);
      return;
    case Activation::SiLU:
      for (int64_t i = 0; i < n; ++i) y[i] = silu(x[i]);
      return;
    case Activation::GELU:
      for (int64_t i = 0; i < n; ++i) y[i] = gelu(x[i]);
      return;
    case Activation::GELUTanh:
      for (int64_t i = 0; i < n; ++i) y[i] = gelu_tanh(x[i]);
      return;
    case Activation::QuickGELU:
      for (int64_t i = 0; i < n; ++i) y[i] = quick_gelu(x[i]);
      return;
    case Activation::ReLU:
      for (int64_t i = 0; i < n; ++i) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
      return;
    case Activation::SoftClamp3:  // torch.tanh(x / 3) * 3: three roundings
      for (int64_t i = 0; i < n; ++i) y[i] = std::tanh(x[i] / 3.0f) * 3.0f;
      return;
    case Activation::SignedToUnit:  // x.add(1).div(2)
      for (int64_t i = 0; i < n; ++i) y[i] = (x[i] + 1.0f) / 2.0f;
      return;
    case Activation::UnitToSigned:  // x.mul(2).sub(1)
      for (int64_t i = 0; i < n; ++i) y[i] = x[i] * 2.0f - 1.0f;
      return;
  }
}

double row_sum(const float* x, int64_t n) {
  double total = 0;
  for (int64_t start = 0; start < n; start += kBlock) {
    const int64_t end = std::min(n, start + kBlock);
    float lanes[kLanes] = {};
    int64_t i = start;
    for (; i + kLanes <= end; i += kLanes)
      for (int j = 0; j < kLanes; ++j) lanes[j] += x[i + j];
    for (int j = 0; j < kLanes; ++j) total += lanes[j];
    for (; i < end; ++i) total += x[i];
  }
  return total;
}

double row_sum_sq_dev(const float* x, int64_t n, float mean) {
  double total = 0;
  for (int64_t start = 0; start < n; start += kBlock) {
    const int64_t end = std::min(n, start + kBlock);
    float lanes[kLanes] = {};
    int64_t i = start;
    for (; i + kLanes <= end; i += kLanes)
      for (int j = 0; j < kLanes; ++j) {
        const float d = x[i + j] - mean;
        lanes[j] += d * d;
      }
    for (int j = 0; j < kLanes; ++j) total += lanes[j];
    for (; i < end; ++i) total += double(x[i] - mean) * (x[i] - mean);
  }
  return total;
}

#if defined(__AVX512F__)
// The hot loops of softmax in AVX-512 (GCC does not vectorise these reductions well without -ffast-math).

// fast_exp on 16 lanes: the same range reduction and polynomial; 2^n applied with scalef.
inline __m512 exp16(__m512 x) {
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.3f)), _mm512_set1_ps(88.3f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504089f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fmadd_ps(n, _mm512_set1_ps(2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.0f / 5040.0f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, n);
}

// round_to(precision, e) on 16 lanes of finite e (exp results): bf16 by adding half an ulp (ties to even)
// and clearing the low bits, f16 through the conversion instructions.
inline __m512 round16(DType precision, __m512 e) {
  if (precision == DType::BF16) {
    const __m512i x = _mm512_castps_si512(e);
    const __m512i odd = _mm512_and_si512(_mm512_srli_epi32(x, 16), _mm512_set1_epi32(1));
    const __m512i up = _mm512_add_epi32(x, _mm512_add_epi32(odd, _mm512_set1_epi32(0x7fff)));
    return _mm512_castsi512_ps(_mm512_and_si512(up, _mm512_set1_epi32(int32_t(0xffff0000u))));
  }
  if (precision == DType::F16)
    return _mm512_cvtph_ps(_mm512_cvtps_ph(e, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  return e;
}

float row_max(const float* x, int64_t n) {
  const __m512 lowest = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  __m512 m0 = lowest, m1 = lowest;
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    m0 = _mm512_max_ps(m0, _mm512_loadu_ps(x + i));
    m1 = _mm512_max_ps(m1, _mm512_loadu_ps(x + i + 16));
  }
  for (; i < n; i += 16)
    m0 = _mm512_max_ps(m0, _mm512_mask_loadu_ps(lowest, first_lanes(std::min<int64_t>(16, n - i)), x + i));
  return _mm512_reduce_max_ps(_mm512_max_ps(m0, m1));
}

float exp_shifted_sum(float* row, int64_t n, float shift) {
  const __m512 s = _mm512_set1_ps(shift);
  double total = 0;
  for (int64_t start = 0; start < n; start += kBlock) {
    const int64_t end = std::min(n, start + kBlock);
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    int64_t i = start;
    for (; i + 32 <= end; i += 32) {
      const __m512 e0 = exp16(_mm512_sub_ps(_mm512_loadu_ps(row + i), s));
      const __m512 e1 = exp16(_mm512_sub_ps(_mm512_loadu_ps(row + i + 16), s));
      _mm512_storeu_ps(row + i, e0);
      _mm512_storeu_ps(row + i + 16, e1);
      acc0 = _mm512_add_ps(acc0, e0);
      acc1 = _mm512_add_ps(acc1, e1);
    }
    for (; i < end; i += 16) {
      const __mmask16 mask = first_lanes(std::min<int64_t>(16, end - i));
      const __m512 e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(mask, row + i), s));
      _mm512_mask_storeu_ps(row + i, mask, e);
      acc0 = _mm512_add_ps(acc0, _mm512_maskz_mov_ps(mask, e));
    }
    total += double(_mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1)));
  }
  return float(total);
}

void column_softmax_step(float* scores, int64_t keys, int64_t lanes, int64_t ld, float* running_max, float* rescale,
                         float* tile_sum, DType probabilities, uint32_t* pairs) {
  const bool power_of_two_shift = probabilities != DType::F32;
  // One strip of 16 lanes at a time: its keys x 16 scores (32 KiB at 512 keys) stay in L1 between the max
  // pass and the exp pass.
  for (int64_t j = 0; j < lanes; j += 16) {
    const __mmask16 mask = first_lanes(std::min<int64_t>(16, lanes - j));
    const __m512 lowest = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
    const __m512 old_max = _mm512_mask_loadu_ps(lowest, mask, running_max + j);
    // Four chains hide the max latency; an exponent k is not comparable with scores, so it joins after.
    __m512 m0 = power_of_two_shift ? lowest : old_max, m1 = lowest, m2 = lowest, m3 = lowest;
    const float* col = scores + j;
    int64_t k = 0;
    for (; k + 4 <= keys; k += 4) {
      m0 = _mm512_max_ps(m0, _mm512_mask_loadu_ps(lowest, mask, col + k * ld));
      m1 = _mm512_max_ps(m1, _mm512_mask_loadu_ps(lowest, mask, col + (k + 1) * ld));
      m2 = _mm512_max_ps(m2, _mm512_mask_loadu_ps(lowest, mask, col + (k + 2) * ld));
      m3 = _mm512_max_ps(m3, _mm512_mask_loadu_ps(lowest, mask, col + (k + 3) * ld));
    }
    for (; k < keys; ++k) m0 = _mm512_max_ps(m0, _mm512_mask_loadu_ps(lowest, mask, col + k * ld));
    __m512 new_max = _mm512_max_ps(_mm512_max_ps(m0, m1), _mm512_max_ps(m2, m3)), shift = new_max;
    if (power_of_two_shift) {  // as softmax_shift_exponent: ceil(max · log2 e)
      const __m512 k = _mm512_roundscale_ps(_mm512_mul_ps(new_max, _mm512_set1_ps(1.44269504088896341f)),
                                            _MM_FROUND_TO_POS_INF | _MM_FROUND_NO_EXC);
      new_max = _mm512_max_ps(old_max, k);
      shift = _mm512_mul_ps(new_max, _mm512_set1_ps(kLn2));
      // 2^(old - new), exact; 0 on the first tile (old = -inf).
      _mm512_mask_storeu_ps(rescale + j, mask, _mm512_scalef_ps(_mm512_set1_ps(1.0f), _mm512_sub_ps(old_max, new_max)));
    } else {
      _mm512_mask_storeu_ps(rescale + j, mask, exp16(_mm512_sub_ps(old_max, new_max)));
    }
    _mm512_mask_storeu_ps(running_max + j, mask, new_max);
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    float* out = scores + j;
    // The rounded probabilities of key rows k and k + 1 (e1 zero past the last key): in place, or as bf16 pairs,
    // the high halves of the rounded floats (exact once rounded).
    auto put = [&](int64_t k, __m512 e0, __m512 e1, bool both) {
      if (pairs == nullptr) {
        _mm512_mask_storeu_ps(out + k * ld, mask, round16(probabilities, e0));
        if (both) _mm512_mask_storeu_ps(out + (k + 1) * ld, mask, round16(probabilities, e1));
        return;
      }
#if defined(__AVX512BF16__)
      // Both rows rounded by one instruction (ties to even, as round16; e is never denormal), then interleaved.
      const __m512i interleave = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7,
                                                  22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
      const __m512i words = _mm512_permutexvar_epi16(interleave, __m512i(_mm512_cvtne2ps_pbh(e1, e0)));
#else
      const __m512i words =
          _mm512_or_si512(_mm512_srli_epi32(_mm512_castps_si512(round16(DType::BF16, e0)), 16),
                          _mm512_and_si512(_mm512_castps_si512(round16(DType::BF16, e1)),
                                           _mm512_set1_epi32(int32_t(0xffff0000u))));
#endif
      _mm512_mask_storeu_epi32(pairs + j + k / 2 * ld, mask, words);
    };
    k = 0;
    for (; k + 2 <= keys; k += 2) {
      const __m512 e0 = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(mask, out + k * ld), shift));
      const __m512 e1 = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(mask, out + (k + 1) * ld), shift));
      put(k, e0, e1, true);
      s0 = _mm512_add_ps(s0, e0);
      s1 = _mm512_add_ps(s1, e1);
    }
    if (k < keys) {
      const __m512 e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(mask, out + k * ld), shift));
      put(k, e, _mm512_setzero_ps(), false);
      s0 = _mm512_add_ps(s0, e);
    }
    _mm512_mask_storeu_ps(tile_sum + j, mask, _mm512_add_ps(s0, s1));
  }
}

#else

void column_softmax_step(float* scores, int64_t keys, int64_t lanes, int64_t ld, float* running_max, float* rescale,
                         float* tile_sum, DType probabilities, uint32_t* pairs) {
  const bool power_of_two_shift = probabilities != DType::F32;
  std::copy(running_max, running_max + lanes, rescale);  // the old maxima (or exponents)
  std::fill(tile_sum, tile_sum + lanes, -std::numeric_limits<float>::infinity());  // the tile's maxima, first
  for (int64_t k = 0; k < keys; ++k) {
    const float* row = scores + k * ld;
    for (int64_t j = 0; j < lanes; ++j) tile_sum[j] = std::max(tile_sum[j], row[j]);
  }
  for (int64_t j = 0; j < lanes; ++j) {
    const float old = rescale[j];
    if (power_of_two_shift) {
      running_max[j] = std::max(old, softmax_shift_exponent(tile_sum[j]));
      rescale[j] = old == -std::numeric_limits<float>::infinity() ? 0.0f : std::ldexp(1.0f, int(std::max(old - running_max[j], -300.0f)));
    } else {
      running_max[j] = std::max(old, tile_sum[j]);
      rescale[j] = fast_exp(old - running_max[j]);
    }
    tile_sum[j] = 0.0f;
  }
  for (int64_t k = 0; k < keys; ++k) {
    float* row = scores + k * ld;
    for (int64_t j = 0; j < lanes; ++j) {
      const float e = fast_exp(row[j] - (power_of_two_shift ? running_max[j] * kLn2 : running_max[j]));
      if (pairs == nullptr) {
        row[j] = round_to(probabilities, e);
      } else {
        uint32_t& word = pairs[k / 2 * ld + j];
        const uint32_t half = f32_to_bf16(round_to(probabilities, e));
        word = k % 2 == 0 ? half : (word | half << 16);  // an odd last key's pair keeps a zero high half
      }
      tile_sum[j] += e;
    }
  }
}

float row_max(const float* x, int64_t n) {
  float lanes[kLanes];
  std::fill(lanes, lanes + kLanes, -std::numeric_limits<float>::infinity());
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) lanes[j] = std::max(lanes[j], x[i + j]);
  float m = lanes[0];
  for (int j = 1; j < kLanes; ++j) m = std::max(m, lanes[j]);
  for (; i < n; ++i) m = std::max(m, x[i]);
  return m;
}

float exp_shifted_sum(float* row, int64_t n, float shift) {
  double total = 0;
  for (int64_t start = 0; start < n; start += kBlock) {
    const int64_t end = std::min(n, start + kBlock);
    float lanes[kLanes] = {};
    int64_t i = start;
    for (; i + kLanes <= end; i += kLanes)
      for (int j = 0; j < kLanes; ++j) {
        const float e = fast_exp(row[i + j] - shift);
        row[i + j] = e;
        lanes[j] += e;
      }
    for (int j = 0; j < kLanes; ++j) total += lanes[j];
    for (; i < end; ++i) total += row[i] = fast_exp(row[i] - shift);
  }
  return float(total);
}

#endif  // __AVX512F__

#if defined(__AVX512BF16__)
// E value dims x 16 lanes in registers while every pair streams past: E independent vdpbf16ps chains (16 or 20
// keep both FMA pipes busy past the instruction's latency).
template <int E>
void pair_products_block(const uint32_t* p, int64_t ld, const uint32_t* v, int64_t dv, int64_t pairs, __mmask16 mask,
                         float* ot) {
  __m512 acc[E];  // unrolled loops over e: the accumulators stay in registers
#pragma GCC unroll 32
  for (int e = 0; e < E; ++e) acc[e] = _mm512_maskz_loadu_ps(mask, ot + e * ld);
  for (int64_t m = 0; m < pairs; ++m) {
    const __m512bh probabilities = __m512bh(_mm512_maskz_loadu_epi32(mask, p + m * ld));
    const uint32_t* values = v + m * dv;
#pragma GCC unroll 32
    for (int e = 0; e < E; ++e)
      acc[e] = _mm512_dpbf16_ps(acc[e], probabilities, __m512bh(_mm512_set1_epi32(int32_t(values[e]))));
  }
#pragma GCC unroll 32
  for (int e = 0; e < E; ++e) _mm512_mask_storeu_ps(ot + e * ld, mask, acc[e]);
}

void accumulate_pair_products(const uint32_t* p, int64_t ld, const uint32_t* v, int64_t dv, int64_t pairs,
                              int64_t lanes, float* ot) {
  for (int64_t j = 0; j < lanes; j += 16) {
    const __mmask16 mask = first_lanes(std::min<int64_t>(16, lanes - j));
    for (int64_t e0 = 0; e0 < dv;) {
      const int64_t left = dv - e0;
      const int step = left % 20 == 0 ? 20 : left >= 16 ? 16 : left >= 8 ? 8 : 1;
      float* o = ot + e0 * ld + j;
      switch (step) {
        case 20: pair_products_block<20>(p + j, ld, v + e0, dv, pairs, mask, o); break;
        case 16: pair_products_block<16>(p + j, ld, v + e0, dv, pairs, mask, o); break;
        case 8: pair_products_block<8>(p + j, ld, v + e0, dv, pairs, mask, o); break;
        default: pair_products_block<1>(p + j, ld, v + e0, dv, pairs, mask, o); break;
      }
      e0 += step;
    }
  }
}
#else
void accumulate_pair_products(const uint32_t* p, int64_t ld, const uint32_t* v, int64_t dv, int64_t pairs,
                              int64_t lanes, float* ot) {
  auto low = [](uint32_t w) { return bf16_to_f32(uint16_t(w & 0xffffu)); };
  auto high = [](uint32_t w) { return bf16_to_f32(uint16_t(w >> 16)); };
  for (int64_t e = 0; e < dv; ++e)
    for (int64_t m = 0; m < pairs; ++m) {
      const uint32_t value = v[m * dv + e];
      for (int64_t j = 0; j < lanes; ++j) {
        const uint32_t probability = p[m * ld + j];
        ot[e * ld + j] += low(probability) * low(value) + high(probability) * high(value);
      }
    }
}
#endif

void softmax_row(float* row, int64_t n) {
  if (n == 0) return;
  const float inv = 1.0f / exp_shifted_sum(row, n, row_max(row, n));
  for (int64_t i = 0; i < n; ++i) row[i] *= inv;
}

}  // namespace kakusan::cpu
