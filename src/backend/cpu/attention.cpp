// Multi-head attention, three ways that give the same numbers:
//  Full   - per (batch, head): S = scale·q·kᵀ (GEMM), row softmax, S·v (GEMM); one Tq x Tk matrix per thread.
//  Sliced - diffusers' attention slicing: `slice_size` (batch, head) pairs at a time share one
//           [slice, Tq, Tk] buffer, computed as in Full.
//  Flash  - tiles of queries x keys with an online softmax (running max and sum per query row), so no Tq x Tk
//           matrix ever exists. Non-causal tiles work transposed (queries along SIMD lanes, see
//           flash_tile_transposed); causal ones accumulate the output rows in place.
// q, k, v are read in place through their row strides (slices of a fused projection need no copy). In reduced
// precision (AttentionParams::precision) each thread rounds the head it works on into its own scratch (q rows
// of its tile, all of the head's keys and values, kept while the thread stays on that head), the softmax
// shifts by powers of two and its unnormalised probabilities are rounded before P·V, the division by their
// sum coming after (backend/precision.h): every strategy then rounds the same numbers as the reference. Where
// bf16 products are native (gemm.h's Bf16Gemm) non-causal bf16 attention keeps those rounded operands as bf16
// and multiplies them on bf16gemm, except the Flash tile's P·V: its probabilities and values are kept as bf16
// pairs of keys, multiplied by accumulate_pair_products (vec_math.h) without oneDNN's repacking of P (the
// 4096-token bf16 attention 5 % faster). Causal attention (the text encoder's 77 tokens) stays on the f32 GEMMs.
#include <algorithm>
#include <cmath>
#include <limits>

#include "backend/cpu/gemm.h"
#include "backend/cpu/kernels.h"
#include "backend/cpu/rounding.h"
#include "backend/cpu/scratch.h"
#include "backend/cpu/vec_math.h"
#include "core/half.h"
#include "core/thread_pool.h"

namespace kakusan::cpu {
namespace {

// Measured with bench_ops on 4096x4096 h8 d40 (query tiles of 96..256 and key tiles of 256..1024 are within
// 3%); a query tile of 128 is a multiple of the SIMD width, so the transposed tile's lanes are all busy.
constexpr int64_t kFlashQueries = 128;  // query rows per Flash tile
constexpr int64_t kFlashKeys = 512;     // keys per Flash tile

// A [batch, tokens, heads·dim] view whose rows can be addressed with a row stride.
struct Rows {
  const float* data;
  int64_t batch_stride, row_stride;
};

// The row stride is the GEMMs' leading dimension, which must span a row: rows that overlap (a stride below
// the width) are made dense, and a single row's stride, never stepped and possibly anything, becomes the width.
Rows rows_of(const TensorView& v, Slot slot) {
  const bool one_row = v.dim(1) <= 1;
  const bool usable = v.dtype == DType::F32 && (v.dim(2) <= 1 || v.strides[2] == 1) &&
                      (one_row || v.strides[1] >= v.dim(2));
  const TensorView r = usable ? v : dense_f32(v, slot);
  return {r.f32(), r.strides[0], one_row ? r.dim(2) : r.strides[1]};
}

struct Problem {
  AttentionDims d;
  AttentionParams p;
  Rows q, k, v;
  float* out;
  int64_t out_batch_stride, out_row_stride;
  bool native = false;  // the rounded operands and probabilities as bf16, multiplied on bf16gemm

  const float* q_head(int64_t bh) const { return q.data + bh / d.heads * q.batch_stride + bh % d.heads * d.head_dim; }
  const float* k_head(int64_t bh) const { return k.data + bh / d.heads * k.batch_stride + bh % d.heads * d.head_dim; }
  const float* v_head(int64_t bh) const {
    return v.data + bh / d.heads * v.batch_stride + bh % d.heads * d.value_dim;
  }
  float* out_head(int64_t bh) const { return out + bh / d.heads * out_batch_stride + bh % d.heads * d.value_dim; }
  // Keys query row i may see.
  int64_t visible(int64_t i) const { return p.causal ? std::min(i + 1, d.kv_len) : d.kv_len; }
  bool reduced() const { return p.precision != DType::F32; }
  // Floats full_head needs: the scores, in reduced precision each row's sum, and with native products the
  // probabilities as bf16.
  int64_t head_scratch() const {
    return d.q_len * d.kv_len + (reduced() ? d.q_len : 0) + (native ? (d.q_len * d.kv_len + 1) / 2 : 0);
  }
};

// A GEMM operand: floats, or (native bf16 products) bf16 bits.
struct Operand {
  const float* f32 = nullptr;
  const uint16_t* bf16 = nullptr;
  Operand at(int64_t offset) const {
    return {f32 != nullptr ? f32 + offset : nullptr, bf16 != nullptr ? bf16 + offset : nullptr};
  }
};

// c = alpha·op(a)·op(b) + beta·c on bf16gemm when both operands are bf16, else on sgemm.
void product(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, Operand a, int64_t lda,
             Operand b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if (a.bf16 != nullptr && b.bf16 != nullptr)
    bf16gemm(trans_a, trans_b, m, n, k, alpha, a.bf16, lda, b.bf16, ldb, beta, c, ldc);
  else
    sgemm(trans_a, trans_b, m, n, k, alpha, a.f32, lda, b.f32, ldb, beta, c, ldc);
}

// One (batch, head)'s operands: q rows from the tile's first query, all keys and values (values in pairs of keys,
// accumulate_pair_products' layout, where HeadOperands was asked for them so).
struct Head {
  Operand q, k, v;
  int64_t q_stride, k_stride, v_stride;
};

// The operands a thread multiplies: the problem's rows as they are (f32), or rounded copies in this thread's
// scratch (reduced precision). The copies of k and v stay while the thread asks for the same head again
// (consecutive Flash tiles of one head), so each is rounded about once per thread that works on it.
// `value_pairs` (native products only): the values as bf16 pairs of keys, for accumulate_pair_products.
class HeadOperands {
 public:
  HeadOperands(const Problem& pr, int64_t max_q_rows, bool value_pairs = false)
      : pr_(pr), max_q_rows_(max_q_rows), value_pairs_(value_pairs) {}

  Head get(int64_t bh, int64_t q0, int64_t rows) {
    const Problem& pr = pr_;
    const AttentionDims& d = pr.d;
    if (!pr.reduced())
      return {{pr.q_head(bh) + q0 * pr.q.row_stride}, {pr.k_head(bh)}, {pr.v_head(bh)}, pr.q.row_stride,
              pr.k.row_stride, pr.v.row_stride};
    // Offsets in the buffer (elements): keys, values (an even offset: pairs are 32-bit words; an odd last key
    // padded to a pair), query rows, and with value pairs two rows of scratch for their interleaving.
    const int64_t k = 0, v = (d.kv_len * d.head_dim + 1) / 2 * 2;
    const int64_t q = v + (value_pairs_ ? (d.kv_len + 1) / 2 * 2 : d.kv_len) * d.value_dim;
    const int64_t interleave = q + max_q_rows_ * d.head_dim;
    const int64_t elements = interleave + (value_pairs_ ? 2 * d.value_dim : 0);
    if (buffer_ == nullptr)
      buffer_ = scratch(Slot::Rounded).floats(size_t(pr.native ? (elements + 1) / 2 : elements));
    if (bh != rounded_head_) {
      round_rows(pr.k_head(bh), pr.k.row_stride, d.kv_len, d.head_dim, k);
      if (value_pairs_)
        round_pairs(pr.v_head(bh), pr.v.row_stride, d.kv_len, d.value_dim, v, interleave);
      else
        round_rows(pr.v_head(bh), pr.v.row_stride, d.kv_len, d.value_dim, v);
      rounded_head_ = bh;
    }
    round_rows(pr.q_head(bh) + q0 * pr.q.row_stride, pr.q.row_stride, rows, d.head_dim, q);
    return {at(q), at(k), at(v), d.head_dim, d.head_dim, d.value_dim};
  }

 private:
  // The buffer's element `offset`: a float, or bf16 bits with native products.
  Operand at(int64_t offset) const {
    if (pr_.native) return {nullptr, reinterpret_cast<const uint16_t*>(buffer_) + offset};
    return {buffer_ + offset, nullptr};
  }

  void round_rows(const float* src, int64_t stride, int64_t rows, int64_t width, int64_t offset) const {
    for (int64_t r = 0; r < rows; ++r) {
      if (pr_.native)
        convert_f32_to_bf16(src + r * stride, reinterpret_cast<uint16_t*>(buffer_) + offset + r * width,
                            size_t(width));
      else
        round_floats(pr_.p.precision, src + r * stride, buffer_ + offset + r * width, width);
    }
  }

  // Rows of values as bf16 pairs of keys: rows 2m and 2m + 1 rounded into the two scratch rows at `temp`, then
  // interleaved into word m (the high half zero past an odd last row).
  void round_pairs(const float* src, int64_t stride, int64_t rows, int64_t width, int64_t offset, int64_t temp) const {
    auto* bits = reinterpret_cast<uint16_t*>(buffer_);
    uint16_t *low = bits + temp, *high = low + width;
    auto* words = reinterpret_cast<uint32_t*>(bits + offset);
    for (int64_t r = 0; r < rows; r += 2) {
      convert_f32_to_bf16(src + r * stride, low, size_t(width));
      if (r + 1 < rows)
        convert_f32_to_bf16(src + (r + 1) * stride, high, size_t(width));
      else
        std::fill(high, high + width, uint16_t(0));
      for (int64_t e = 0; e < width; ++e) words[r / 2 * width + e] = uint32_t(low[e]) | uint32_t(high[e]) << 16;
    }
  }

  const Problem& pr_;
  int64_t max_q_rows_;
  bool value_pairs_;
  float* buffer_ = nullptr;
  int64_t rounded_head_ = -1;
};

// One (batch, head) with its whole Tq x Tk score matrix in `scores` (head_scratch() floats).
void full_head(const Problem& pr, int64_t bh, float* scores) {
  const AttentionDims& d = pr.d;
  HeadOperands operands(pr, d.q_len);
  const Head h = operands.get(bh, 0, d.q_len);
  float* inverse_sums = scores + d.q_len * d.kv_len;  // reduced precision only
  uint16_t* probabilities =  // native products only
      pr.native ? reinterpret_cast<uint16_t*>(inverse_sums + d.q_len) : nullptr;
  product(false, true, d.q_len, d.kv_len, d.head_dim, pr.p.scale, h.q, h.q_stride, h.k, h.k_stride, 0.0f, scores,
          d.kv_len);
  parallel_for(d.q_len, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      float* row = scores + i * d.kv_len;
      const int64_t keys = pr.visible(i);
      if (pr.reduced()) {
        const float shift = softmax_shift_exponent(row_max(row, keys)) * kLn2;
        inverse_sums[i] = 1.0f / exp_shifted_sum(row, keys, shift);
        if (probabilities != nullptr) {  // native is never causal: every key is visible
          convert_f32_to_bf16(row, probabilities + i * d.kv_len, size_t(keys));
          continue;
        }
        round_floats(pr.p.precision, row, row, keys);
      } else {
        softmax_row(row, keys);
      }
      std::fill(row + keys, row + d.kv_len, 0.0f);
    }
  }, std::max<int64_t>(1, 16384 / std::max<int64_t>(d.kv_len, 1)));
  float* out = pr.out_head(bh);
  product(false, false, d.q_len, d.value_dim, d.kv_len, 1.0f, {scores, probabilities}, d.kv_len, h.v, h.v_stride,
          0.0f, out, pr.out_row_stride);
  if (pr.reduced()) {
    for (int64_t i = 0; i < d.q_len; ++i)
      for (int64_t e = 0; e < d.value_dim; ++e) out[i * pr.out_row_stride + e] *= inverse_sums[i];
  }
}

// Runs fn(bh) for bh in [begin, end), one (batch, head) per thread; with a single pair, the GEMMs and the
// softmax inside split across the threads instead (nested parallel_for calls run inline).
template <typename Fn>
void for_heads(int64_t begin, int64_t end, Fn&& fn) {
  parallel_for(end - begin, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) fn(begin + i);
  });
}

void full(const Problem& pr) {
  for_heads(0, pr.d.batch * pr.d.heads,
            [&](int64_t bh) { full_head(pr, bh, scratch(Slot::Work).floats(size_t(pr.head_scratch()))); });
}

void sliced(const Problem& pr) {
  const int64_t pairs = pr.d.batch * pr.d.heads, matrix = pr.head_scratch();
  const int64_t slice = pr.p.slice_size > 0 ? std::min<int64_t>(pr.p.slice_size, pairs) : 1;
  float* scores = scratch(Slot::Work).floats(size_t(slice * matrix));
  for (int64_t start = 0; start < pairs; start += slice) {
    for_heads(start, std::min(pairs, start + slice),
              [&](int64_t bh) { full_head(pr, bh, scores + (bh - start) * matrix); });
  }
}

// Queries [q0, q0 + rows) of one (batch, head), keys in tiles, online softmax.
void flash_tile(const Problem& pr, const Head& h, int64_t bh, int64_t q0, int64_t rows) {
  const AttentionDims& d = pr.d;
  float* s = scratch(Slot::Work).floats(size_t(kFlashQueries * kFlashKeys + 2 * kFlashQueries));
  float* row_max_so_far = s + kFlashQueries * kFlashKeys;
  float* row_sum_so_far = row_max_so_far + kFlashQueries;
  std::fill(row_max_so_far, row_max_so_far + rows, -std::numeric_limits<float>::infinity());
  std::fill(row_sum_so_far, row_sum_so_far + rows, 0.0f);
  float* out = pr.out_head(bh) + q0 * pr.out_row_stride;
  for (int64_t i = 0; i < rows; ++i) std::fill(out + i * pr.out_row_stride, out + i * pr.out_row_stride + d.value_dim, 0.0f);
  // Causal: no row of this tile sees keys past its last query.
  const int64_t key_end = pr.p.causal ? std::min(d.kv_len, q0 + rows) : d.kv_len;
  for (int64_t k0 = 0; k0 < key_end; k0 += kFlashKeys) {
    const int64_t cols = std::min(kFlashKeys, key_end - k0);
    sgemm(false, true, rows, cols, d.head_dim, pr.p.scale, h.q.f32, h.q_stride, h.k.f32 + k0 * h.k_stride, h.k_stride,
          0.0f, s, kFlashKeys);
    for (int64_t i = 0; i < rows; ++i) {
      float* row = s + i * kFlashKeys;
      const int64_t valid = std::clamp<int64_t>(pr.visible(q0 + i) - k0, 0, cols);
      std::fill(row + valid, row + cols, 0.0f);
      if (valid == 0) continue;
      // In reduced precision the running "max" is the power-of-two shift's exponent k (precision.h).
      const float old_max = row_max_so_far[i], tile_max = row_max(row, valid);
      const float new_max = std::max(old_max, pr.reduced() ? softmax_shift_exponent(tile_max) : tile_max);
      const float sum = exp_shifted_sum(row, valid, pr.reduced() ? new_max * kLn2 : new_max);
      if (pr.reduced()) round_floats(pr.p.precision, row, row, valid);
      if (old_max != -std::numeric_limits<float>::infinity() && old_max != new_max) {
        const float rescale = pr.reduced() ? std::ldexp(1.0f, int(old_max - new_max)) : fast_exp(old_max - new_max);
        row_sum_so_far[i] *= rescale;
        float* o = out + i * pr.out_row_stride;
        for (int64_t e = 0; e < d.value_dim; ++e) o[e] *= rescale;
      }
      row_sum_so_far[i] += sum;
      row_max_so_far[i] = new_max;
    }
    sgemm(false, false, rows, d.value_dim, cols, 1.0f, s, kFlashKeys, h.v.f32 + k0 * h.v_stride, h.v_stride, 1.0f,
          out, pr.out_row_stride);
  }
  for (int64_t i = 0; i < rows; ++i) {
    const float inv = 1.0f / row_sum_so_far[i];
    float* o = out + i * pr.out_row_stride;
    for (int64_t e = 0; e < d.value_dim; ++e) o[e] *= inv;
  }
}

// Non-causal Flash, transposed: the tile holds scores as Sᵀ [keys, queries] and the output as Oᵀ [value_dim,
// queries], so every softmax step (running max, exp, sums, rescaling) runs down columns with one query per
// SIMD lane: no horizontal reductions, no per-row scalar work, and the loops vectorise without intrinsics.
// It also puts the query tile (a multiple of the vector width) on the GEMMs' n side, where the small head
// dims of SD (40, 80) would otherwise leave vector lanes idle in P·V.
void flash_tile_transposed(const Problem& pr, const Head& h, int64_t bh, int64_t q0, int64_t rows) {
  const AttentionDims& d = pr.d;
  const int64_t ld = kFlashQueries, dv = d.value_dim;
  const int64_t bf16_floats = pr.native ? kFlashKeys * ld / 2 : 0;
  float* st = scratch(Slot::Work).floats(size_t(kFlashKeys * ld + dv * ld + 3 * ld + bf16_floats));
  float* ot = st + kFlashKeys * ld;
  float* running_max = ot + dv * ld;
  float* rescale = running_max + ld;
  float* tile_sum = rescale + ld;
  // Native products: the probabilities as bf16 pairs of keys, multiplied with the values' pairs.
  uint32_t* pairs = pr.native ? reinterpret_cast<uint32_t*>(tile_sum + ld) : nullptr;
  double running_sum[kFlashQueries];
  std::fill(running_max, running_max + rows, -std::numeric_limits<float>::infinity());
  std::fill(running_sum, running_sum + rows, 0.0);
  std::fill(ot, ot + dv * ld, 0.0f);
  for (int64_t k0 = 0; k0 < d.kv_len; k0 += kFlashKeys) {
    const int64_t cols = std::min(kFlashKeys, d.kv_len - k0);
    product(false, true, cols, rows, d.head_dim, pr.p.scale, h.k.at(k0 * h.k_stride), h.k_stride, h.q, h.q_stride,
            0.0f, st, ld);
    // Old max -inf (first tile): rescale is ~1e-38, applied to a zero sum and output.
    // At most kFlashKeys terms per sum.
    column_softmax_step(st, cols, rows, ld, running_max, rescale, tile_sum, pr.p.precision, pairs);
    for (int64_t j = 0; j < rows; ++j) running_sum[j] = running_sum[j] * rescale[j] + tile_sum[j];
    if (k0 > 0) {
      for (int64_t e = 0; e < dv; ++e) {
        float* o = ot + e * ld;
        for (int64_t j = 0; j < rows; ++j) o[j] *= rescale[j];
      }
    }
    if (pairs != nullptr)
      accumulate_pair_products(pairs, ld, reinterpret_cast<const uint32_t*>(h.v.bf16) + k0 / 2 * dv, dv, (cols + 1) / 2,
                               rows, ot);
    else
      product(true, false, dv, rows, cols, 1.0f, h.v.at(k0 * h.v_stride), h.v_stride, {st}, ld, 1.0f, ot, ld);
  }
  float* out = pr.out_head(bh) + q0 * pr.out_row_stride;
  for (int64_t j = 0; j < rows; ++j) tile_sum[j] = float(1.0 / running_sum[j]);
  for (int64_t j = 0; j < rows; ++j) {
    float* o = out + j * pr.out_row_stride;
    for (int64_t e = 0; e < dv; ++e) o[e] = ot[e * ld + j] * tile_sum[j];
  }
}

// Units of (head, query tile) split across the threads in contiguous ranges, so a thread's consecutive tiles
// share a head (and its rounded keys and values).
void flash(const Problem& pr) {
  const int64_t tiles_per_head = (pr.d.q_len + kFlashQueries - 1) / kFlashQueries;
  parallel_for(pr.d.batch * pr.d.heads * tiles_per_head, [&](int64_t begin, int64_t end) {
    HeadOperands operands(pr, kFlashQueries, pr.native && !pr.p.causal);
    for (int64_t unit = begin; unit < end; ++unit) {
      const int64_t bh = unit / tiles_per_head, q0 = unit % tiles_per_head * kFlashQueries;
      const int64_t rows = std::min(kFlashQueries, pr.d.q_len - q0);
      const Head h = operands.get(bh, q0, rows);
      if (pr.p.causal) {
        flash_tile(pr, h, bh, q0, rows);
      } else {
        flash_tile_transposed(pr, h, bh, q0, rows);
      }
    }
  });
}

}  // namespace

void attention(const AttentionDims& d, const TensorView& q, const TensorView& k, const TensorView& v,
               const AttentionParams& p, const TensorView& out) {
  DenseOutput o(out, Slot::Output);
  const Problem pr{d, p, rows_of(q, Slot::Input), rows_of(k, Slot::Input2), rows_of(v, Slot::Input3),
                   o.data(), d.q_len * d.heads * d.value_dim, d.heads * d.value_dim,
                   p.precision == DType::BF16 && !p.causal && bf16_gemm_native()};
  if (d.kv_len == 0) {  // no keys: zeros in every precision (the reduced ones would divide 0 by a 0 sum)
    std::fill(o.data(), o.data() + d.batch * d.q_len * d.heads * d.value_dim, 0.0f);
  } else if (d.batch * d.heads * d.q_len > 0) {
    switch (p.strategy) {
      case AttentionStrategy::Full: full(pr); break;
      case AttentionStrategy::Sliced: sliced(pr); break;
      case AttentionStrategy::Flash: flash(pr); break;
      // Auto: with at most one tile of keys Flash does Full's work plus bookkeeping; beyond that Flash is
      // faster (measured with bench_ops) and needs no Tq x Tk buffer.
      case AttentionStrategy::Auto: d.kv_len <= kFlashKeys ? full(pr) : flash(pr); break;
    }
  }
  o.finish();
}

}  // namespace kakusan::cpu
