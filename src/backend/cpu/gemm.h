// GEMM for the CPU kernels: oneDNN's sgemm (JIT, AVX-512 where the CPU has it; measured ~2x OpenBLAS's
// Haswell kernels here), always single-threaded inside, split across our own thread pool. Called from inside
// a parallel_for body (e.g. one attention head per thread) it simply runs on the calling thread.
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace kakusan::cpu {

// c[m, n] = alpha · op(a) · op(b) + beta · c (row-major); op(a) is [m, k], op(b) is [k, n]; leading dimensions
// in elements. beta == 0 means c is not read.
void sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
           const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

// A rank-2 float32 view as a GEMM operand: data, leading dimension and whether it is stored transposed.
// False when the strides fit neither layout (the caller copies it first).
struct GemmOperand {
  const float* data = nullptr;
  int64_t ld = 0;
  bool transposed = false;
};
bool as_gemm_operand(const TensorView& matrix, GemmOperand& out);

}  // namespace kakusan::cpu
