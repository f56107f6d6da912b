// linear on the GEMMs of gemm.h. With a bf16 weight the input is rounded to bf16 first (backend.h's precision
// rule), a block of rows at a time into bounded scratch: as bf16 for bf16gemm with the weight in place where
// that is the faster path (bf16_gemm_native), else as floats that the f32 GEMM multiplies exactly against the
// widened weight. bf16gemm adds the bias inside the GEMM; the f32 GEMMs add their products to it, written first.
#include <algorithm>

#include "backend/cpu/gemm.h"
#include "backend/cpu/kernels.h"
#include "backend/cpu/rounding.h"
#include "backend/cpu/scratch.h"
#include "core/half.h"
#include "core/thread_pool.h"

namespace kakusan::cpu {
void linear(const LinearDims& d, const TensorView& x, const TensorView& w, const TensorView& bias,
            const TensorView& y) {
  const DType precision = product_precision(w);
  const float* input = dense_f32(x, Slot::Input).f32();
  const float* b = param_f32(bias, Slot::Bias);
  DenseOutput out(y, Slot::Output);
  float* o = out.data();
  const bool native = precision == DType::BF16 && w.dtype == DType::BF16 && w.is_contiguous() && bf16_gemm_native();
  // The bias the products add to (no products at all: zeros); bf16gemm adds it itself.
  if ((b != nullptr && !native) || d.k == 0) {
    parallel_for(d.m, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        if (b != nullptr)
          std::copy(b, b + d.n, o + r * d.n);
        else
          std::fill(o + r * d.n, o + (r + 1) * d.n, 0.0f);
      }
    }, std::max<int64_t>(1, 16384 / std::max<int64_t>(d.n, 1)));
  }
  // f32: all rows at once. bf16: blocks of rows rounded into scratch, each multiplied by every weight panel (a
  // bf16 weight is then converted once per block: a few times at most, against a GEMM of block rows).
  const int64_t block = precision == DType::F32
                            ? d.m
                            : std::clamp<int64_t>(scratch_limits().rounded_input / std::max<int64_t>(d.k, 1), 1,
                                                  std::max<int64_t>(d.m, 1));  // clamp needs 1 <= its high
  if (native && d.k > 0) {
    uint16_t* bits = reinterpret_cast<uint16_t*>(scratch(Slot::Input2).floats(size_t(block * d.k + 1) / 2));
    for (int64_t r0 = 0; r0 < d.m; r0 += block) {
      const int64_t m = std::min(block, d.m - r0);
      parallel_for(m * d.k, [&](int64_t begin, int64_t end) {
        convert_f32_to_bf16(input + r0 * d.k + begin, bits + begin, size_t(end - begin));
      }, 1 << 15);
      bf16gemm(false, true, m, d.n, d.k, 1.0f, bits, d.k, w.u16(), d.k, 0.0f, o + r0 * d.n, d.n, b);
    }
    out.finish();
    return;
  }
  float* rounded = precision == DType::F32 ? nullptr : scratch(Slot::Input2).floats(size_t(block * d.k));
  for (int64_t r0 = 0; r0 < d.m; r0 += block) {
    const int64_t m = std::min(block, d.m - r0);
    const float* a = input + r0 * d.k;
    if (rounded != nullptr) {
      parallel_for(m * d.k, [&](int64_t begin, int64_t end) {
        round_floats(precision, a + begin, rounded + begin, end - begin);
      }, 1 << 15);
      a = rounded;
    }
    // Output columns [row0, row0 + rows) come from weight rows [row0, row0 + rows); chunks of k accumulate.
    const int64_t chunk = weight_chunk_columns(w, d.k);
    for (int64_t k0 = 0; k0 < d.k; k0 += chunk) {
      const int64_t k1 = std::min(d.k, k0 + chunk);
      const float beta = b != nullptr || k0 > 0 ? 1.0f : 0.0f;
      for_each_weight_block(w, d.n, d.k, k0, k1, [&](const WeightBlock& panel) {
        sgemm(false, true, m, panel.rows, k1 - k0, 1.0f, a + k0, d.k, panel.data, panel.ld, beta,
              o + r0 * d.n + panel.row0, d.n);
      });
    }
  }
  out.finish();
}

}  // namespace kakusan::cpu
