// GEMM for the CPU kernels: oneDNN's sgemm (JIT, AVX-512 where the CPU has it; measured ~2x OpenBLAS's
// Haswell kernels here), always single-threaded inside, split across our own thread pool. Called from inside
// a parallel_for body (e.g. one attention head per thread) it simply runs on the calling thread.
#pragma once

#include <cstdint>
#include <functional>

#include "core/tensor.h"

namespace kakusan::cpu {

// c[m, n] = alpha · op(a) · op(b) + beta · c (row-major); op(a) is [m, k], op(b) is [k, n]; leading dimensions
// in elements. beta == 0 means c is not read.
void sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
           const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

// A weight matrix [rows, k] (f32, f16 or bf16; rows of k contiguous elements) as float32 panels of rows:
// fn(first_row, panel_rows, panel) for consecutive panels covering all rows. A float32 weight is used in
// place (one panel, or panels of max_rows); others are converted a panel at a time into this thread's
// scratch, so an fp16 model never holds a float32 copy of a whole weight (1280x2560x3x3 would be 118 MB).
void for_each_weight_panel(const TensorView& w, int64_t rows, int64_t k,
                           const std::function<void(int64_t, int64_t, const float*)>& fn,
                           int64_t max_rows = INT64_MAX);

}  // namespace kakusan::cpu
