#include "backend/cpu/gemm.h"
#include "backend/cpu/onednn.h"

#include <omp.h>
#include <oneapi/dnnl/dnnl.h>

#include <algorithm>

#include "backend/cpu/scratch.h"
#include "core/thread_pool.h"

namespace kakusan::cpu {
namespace {

constexpr double kSplitFlops = 4e6;  // below this a GEMM is not worth splitting across threads
constexpr int64_t kSplitAlign = 16;  // split boundaries on multiples of the kernels' register blocking

int64_t split_point(int64_t size, int64_t part, int64_t parts) {
  if (part >= parts) return size;
  return std::min(size, (size * part / parts + kSplitAlign / 2) / kSplitAlign * kSplitAlign);
}

// c[m, n] = beta·c: a GEMM with k = 0.
void scale_c(int64_t m, int64_t n, float beta, float* c, int64_t ldc) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) c[i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
}

// A GEMM of m x n outputs over k split across the pool: part(r0, r1, c0, c1) computes rows [r0, r1) and
// columns [c0, c1) of c on its thread, along the longer of m and n. (A template: no std::function per call.)
template <typename Part>
void split_gemm(int64_t m, int64_t n, int64_t k, const Part& part) {
  const int64_t parts = 2.0 * double(m) * double(n) * double(k) < kSplitFlops ? 1 : num_threads();
  const bool split_rows = m >= n;
  const int64_t extent = split_rows ? m : n;
  if (parts <= 1 || extent < 2 * kSplitAlign) {
    keep_onednn_on_this_thread();
    part(0, m, 0, n);
    return;
  }
  parallel_for(parts, [&](int64_t begin, int64_t end) {
    const int64_t lo = split_point(extent, begin, parts), hi = split_point(extent, end, parts);
    if (hi <= lo) return;
    keep_onednn_on_this_thread();
    if (split_rows)
      part(lo, hi, 0, n);
    else
      part(0, m, lo, hi);
  });
}

// Where rows [r0, ...) of op(x) start, and columns [c0, ...) of op(y), for a matrix with leading dimension ld.
template <typename T>
const T* op_rows(const T* x, bool trans, int64_t r0, int64_t ld) {
  return trans ? x + r0 : x + r0 * ld;
}
template <typename T>
const T* op_columns(const T* y, bool trans, int64_t c0, int64_t ld) {
  return trans ? y + c0 * ld : y + c0;
}

}  // namespace

// oneDNN's OpenMP team is kept at one thread (the OpenMP thread count is a per-thread setting, so each calling
// thread sets it once): all parallelism comes from our pool.
void keep_onednn_on_this_thread() {
  thread_local const bool single_threaded = [] {
    omp_set_num_threads(1);
    return true;
  }();
  (void)single_threaded;
}

void sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
           const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  if (k == 0) return scale_c(m, n, beta, c, ldc);
  split_gemm(m, n, k, [&](int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
    const dnnl_status_t status =
        dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', r1 - r0, c1 - c0, k, alpha, op_rows(a, trans_a, r0, lda),
                   lda, op_columns(b, trans_b, c0, ldb), ldb, beta, c + r0 * ldc + c0, ldc);
    KK_ASSERT(status == dnnl_success);
  });
}

void bf16gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const uint16_t* a,
              int64_t lda, const uint16_t* b, int64_t ldb, float beta, float* c, int64_t ldc, const float* bias) {
  KK_ASSERT(bias == nullptr || alpha == 1.0f);  // oneDNN would scale the bias with the products
  if (m == 0 || n == 0) return;
  if (k == 0) {
    scale_c(m, n, beta, c, ldc);
    if (bias != nullptr)
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) c[i * ldc + j] += bias[j];
    return;
  }
  split_gemm(m, n, k, [&](int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
    bf16gemm_on_this_thread(trans_a, trans_b, r1 - r0, c1 - c0, k, alpha, op_rows(a, trans_a, r0, lda), lda,
                            op_columns(b, trans_b, c0, ldb), ldb, beta, c + r0 * ldc + c0, ldc,
                            bias != nullptr ? bias + c0 : nullptr);
  });
}

bool weight_in_place(const TensorView& w) { return w.dtype == DType::F32 && w.is_contiguous(); }

int64_t weight_chunk_columns(const TensorView& w, int64_t k) {
  // A strided view is made dense whole (for_each_weight_block): one chunk, so it is copied once, not per chunk.
  if (weight_in_place(w) || !w.is_contiguous()) return k;
  constexpr int64_t kPanelRows = 128;  // the GEMM's rows per widened panel worth keeping
  return even_chunk(k, scratch_limits().weight_panel / kPanelRows);
}

int64_t even_chunk(int64_t total, int64_t most) {
  if (total <= 0) return 1;
  most = std::clamp<int64_t>(most, 1, total);
  const int64_t chunks = (total + most - 1) / most;
  return (total + chunks - 1) / chunks;
}

void for_each_weight_block(const TensorView& w, int64_t rows, int64_t k, int64_t k0, int64_t k1,
                           const std::function<void(const WeightBlock&)>& fn) {
  KK_ASSERT(w.numel() == rows * k && 0 <= k0 && k0 < k1 && k1 <= k);
  if (rows == 0) return;  // no output features or channels: nothing to multiply (and no panels to size)
  if (weight_in_place(w)) {
    fn({0, rows, w.f32() + k0, k});
    return;
  }
  if (!w.is_contiguous()) {  // a strided view (not a model weight): one dense float32 copy
    fn({0, rows, dense_f32(w, Slot::Weight).f32() + k0, k});
    return;
  }
  // As many panels as the budget needs, a multiple of the threads, of equal heights.
  const int64_t cols = k1 - k0, threads = num_threads();
  const int64_t fit = std::max<int64_t>(1, scratch_limits().weight_panel / cols);
  int64_t panels = (rows + fit - 1) / fit;
  panels = std::min(rows, (panels + threads - 1) / threads * threads);
  const int64_t panel_rows = (rows + panels - 1) / panels;
  panels = (rows + panel_rows - 1) / panel_rows;
  const size_t element = dtype_size(w.dtype);
  parallel_for(panels, [&](int64_t begin, int64_t end) {
    float* panel = scratch(Slot::Weight).floats(size_t(panel_rows * cols));
    for (int64_t p = begin; p < end; ++p) {
      const int64_t row0 = p * panel_rows, n = std::min(panel_rows, rows - row0);
      for (int64_t r = 0; r < n; ++r)
        widen_to_f32(static_cast<const char*>(w.data) + ((row0 + r) * k + k0) * int64_t(element), w.dtype,
                     panel + r * cols, cols);
      fn({row0, n, panel, cols});
    }
  });
}

}  // namespace kakusan::cpu
