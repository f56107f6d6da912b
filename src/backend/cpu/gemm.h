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

// The same with bf16 operands (their bits as uint16_t): products exact in f32, accumulated in f32 (oneDNN's bf16
// matmul, vdpbf16ps), so the result is sgemm's on the operands widened, to the order of the sums. `bias` (n
// floats, alpha 1 only) is added to every row inside the GEMM: a linear layer's bias without a pass writing it
// into c first and the GEMM reading it back (beta 1), measured 5-14 % slower on the UNet's linear shapes.
void bf16gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const uint16_t* a,
              int64_t lda, const uint16_t* b, int64_t ldb, float beta, float* c, int64_t ldc,
              const float* bias = nullptr);

// bf16gemm's part on the calling thread (gemm_bf16.cpp; bf16gemm splits the outputs across the pool).
void bf16gemm_on_this_thread(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                             const uint16_t* a, int64_t lda, const uint16_t* b, int64_t ldb, float beta, float* c,
                             int64_t ldc, const float* bias);

// How the kernels multiply in bf16 (a bf16 weight, bf16 attention): on bf16gemm (Native), or on the f32 GEMMs
// with the activation rounded (Widened: faster where vdpbf16ps runs at half the FMA rate, as on the Intel
// machines of docs/bf16.md). Auto (the default) is Native where cpu_has_fast_bf16_products(); tests force
// either. Both give the contract's numbers; they differ in the order of the f32 sums.
enum class Bf16Gemm { Auto, Native, Widened };
Bf16Gemm& bf16_gemm_setting();
bool bf16_gemm_native();

// Rows [row0, row0 + rows) and columns [k0, k1) of a weight matrix as float32: element (r, c) of the block
// is data[r * ld + c].
struct WeightBlock {
  int64_t row0, rows;
  const float* data;
  int64_t ld;
};

// Whether a weight is multiplied in place (dense float32) rather than widened block by block.
bool weight_in_place(const TensorView& w);

// The columns per chunk a GEMM over the weight should take (callers split k into chunks and accumulate): all
// k for a weight used in place or made dense whole (a strided view); for a widened one few enough that a panel
// of useful height fits the widened panel's scratch (ScratchLimits::weight_panel).
int64_t weight_chunk_columns(const TensorView& w, int64_t k);

// The size of the fewest equal chunks of at most `most` that cover `total` (the last may be shorter).
int64_t even_chunk(int64_t total, int64_t most);

// Columns [k0, k1) of a weight matrix [rows, k] (f32, f16 or bf16; rows of k contiguous elements) as float32
// blocks of rows, for the GEMMs that multiply it: fn(block) for blocks covering all rows. A dense float32
// weight is one block, in place, handed to fn on the calling thread (fn's GEMMs then use every thread).
// Others are widened a panel of rows at a time into the scratch of the thread that multiplies it, the panels
// spread over the threads (fn runs on the panel's thread; its GEMMs stay there): a panel is small enough to
// stay in that core's L2 cache from its widening to its GEMM, so an fp16 weight is read from memory once, at
// half float32's bytes, and never held whole as float32 (1280x2560x3x3 would be 118 MB).
void for_each_weight_block(const TensorView& w, int64_t rows, int64_t k, int64_t k0, int64_t k1,
                           const std::function<void(const WeightBlock&)>& fn);

}  // namespace kakusan::cpu
