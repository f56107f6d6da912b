// GEMM for the CPU kernels (OpenBLAS sgemm, row-major) and the switch that keeps BLAS single-threaded inside
// our own parallel regions.
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace kakusan::cpu {

// c[m, n] = alpha · op(a) · op(b) + beta · c; op(a) is [m, k], op(b) is [k, n]; leading dimensions in elements.
// beta == 0 means c is not read.
void sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
           const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

// A rank-2 float32 view as a BLAS operand: data, leading dimension and whether it is stored transposed.
// False when the strides fit neither layout (the caller copies it first).
struct GemmOperand {
  const float* data = nullptr;
  int64_t ld = 0;
  bool transposed = false;
};
bool as_gemm_operand(const TensorView& matrix, GemmOperand& out);

// While alive, BLAS calls run on the calling thread only: for parallel_for bodies that call sgemm, so the
// machine is not oversubscribed by BLAS threads inside our threads.
class SingleThreadedBlas {
 public:
  SingleThreadedBlas();
  ~SingleThreadedBlas();
  SingleThreadedBlas(const SingleThreadedBlas&) = delete;
  SingleThreadedBlas& operator=(const SingleThreadedBlas&) = delete;
};

}  // namespace kakusan::cpu
