#include "backend/cpu/gemm.h"

#include <cblas.h>

#include <algorithm>

#include "core/thread_pool.h"

namespace kakusan::cpu {

void sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
           const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, int(m),
              int(n), int(k), alpha, a, int(lda), b, int(ldb), beta, c, int(ldc));
}

bool as_gemm_operand(const TensorView& v, GemmOperand& out) {
  KK_ASSERT(v.rank() == 2 && v.dtype == DType::F32);
  const int64_t rows = v.dim(0), cols = v.dim(1);
  const int64_t row_stride = rows == 1 ? std::max<int64_t>(cols, 1) : v.strides[0];
  const int64_t col_stride = cols == 1 ? std::max<int64_t>(rows, 1) : v.strides[1];
  out.data = v.f32();
  if ((cols == 1 || v.strides[1] == 1) && row_stride >= std::max<int64_t>(cols, 1)) {
    out.ld = row_stride;
    out.transposed = false;
    return true;
  }
  if ((rows == 1 || v.strides[0] == 1) && col_stride >= std::max<int64_t>(rows, 1)) {
    out.ld = col_stride;
    out.transposed = true;
    return true;
  }
  return false;
}

SingleThreadedBlas::SingleThreadedBlas() {
  if (num_threads() > 1) openblas_set_num_threads(1);
}

SingleThreadedBlas::~SingleThreadedBlas() {
  if (num_threads() > 1) openblas_set_num_threads(num_threads());
}

}  // namespace kakusan::cpu
