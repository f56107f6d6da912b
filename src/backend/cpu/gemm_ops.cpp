// linear and matmul on the GEMM of gemm.h.
#include <algorithm>

#include "backend/cpu/gemm.h"
#include "backend/cpu/kernels.h"
#include "backend/cpu/scratch.h"
#include "core/thread_pool.h"

namespace kakusan::cpu {
namespace {

// Matrix `i` of a rank-2 or rank-3 view (rank 2 is shared by every batch).
TensorView matrix(const TensorView& v, int64_t i) { return v.rank() == 3 ? v[v.dim(0) == 1 ? 0 : i] : v; }

// A BLAS-compatible view of `v`: itself if its matrices have a BLAS layout, else a dense copy.
TensorView blas_ready(const TensorView& v, Slot slot) {
  GemmOperand probe;
  if (v.dtype == DType::F32 && as_gemm_operand(matrix(v, 0), probe)) return v;
  return dense_f32(v, slot);
}

}  // namespace

void linear(const LinearDims& d, const TensorView& x, const TensorView& w, const TensorView& bias,
            const TensorView& y) {
  const float* input = dense_f32(x, Slot::Input).f32();
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

void matmul(const MatmulDims& d, const TensorView& a, bool trans_a, const TensorView& b, bool trans_b,
            const TensorView& c, float alpha, float beta) {
  const TensorView av = blas_ready(a, Slot::Input), bv = blas_ready(b, Slot::Input2);
  GemmOperand probe;
  const bool c_direct = as_gemm_operand(matrix(c, 0), probe) && !probe.transposed;
  TensorView cv = c;
  if (!c_direct) {
    cv = TensorView(scratch(Slot::Output).floats(size_t(c.numel())), DType::F32, c.shape);
    if (beta != 0.0f) copy_strided(c, cv);
  }
  auto one = [&](int64_t i) {
    GemmOperand oa, ob, oc;
    as_gemm_operand(matrix(av, i), oa);
    as_gemm_operand(matrix(bv, i), ob);
    as_gemm_operand(matrix(cv, i), oc);
    sgemm(trans_a != oa.transposed, trans_b != ob.transposed, d.m, d.n, d.k, alpha, oa.data, oa.ld, ob.data, ob.ld,
          beta, const_cast<float*>(oc.data), oc.ld);
  };
  // Many small products: one per thread. Few large ones: each split across the threads by sgemm.
  const bool small = d.m * d.n * d.k < (int64_t(1) << 21);
  if (d.batch > 1 && small) {
    parallel_for(d.batch, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) one(i);
    });
  } else {
    for (int64_t i = 0; i < d.batch; ++i) one(i);
  }
  if (!c_direct) copy_strided(cv, c);
}

}  // namespace kakusan::cpu
