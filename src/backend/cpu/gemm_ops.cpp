// linear on the GEMM of gemm.h; with a bf16 weight the input is rounded to bf16 first (backend.h's
// precision rule), and the f32 GEMM then multiplies the rounded operands exactly.
#include <algorithm>

#include "backend/cpu/gemm.h"
#include "backend/cpu/kernels.h"
#include "backend/cpu/rounding.h"
#include "backend/cpu/scratch.h"
#include "core/thread_pool.h"

namespace kakusan::cpu {
void linear(const LinearDims& d, const TensorView& x, const TensorView& w, const TensorView& bias,
            const TensorView& y) {
  const float* input = rounded_dense(x, product_precision(w), Slot::Input).f32();
  const float* b = param_f32(bias, Slot::Bias);
  DenseOutput out(y, Slot::Output);
  float* o = out.data();
  if (b != nullptr) {
    parallel_for(d.m, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) std::copy(b, b + d.n, o + r * d.n);
    }, std::max<int64_t>(1, 16384 / std::max<int64_t>(d.n, 1)));
  }
  // Output columns [first, first + rows) come from weight rows [first, first + rows).
  for_each_weight_panel(w, d.n, d.k, [&](int64_t first, int64_t rows, const float* panel) {
    sgemm(false, true, d.m, rows, d.k, 1.0f, input, d.k, panel, d.k, b != nullptr ? 1.0f : 0.0f, o + first, d.n);
  });
  out.finish();
}

}  // namespace kakusan::cpu
