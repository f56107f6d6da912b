#include "backend/cpu/gemm.h"

#include <omp.h>
#include <oneapi/dnnl/dnnl.h>

#include <algorithm>

#include "backend/cpu/scratch.h"
#include "core/thread_pool.h"

namespace kakusan::cpu {
namespace {

constexpr double kSplitFlops = 4e6;  // below this a GEMM is not worth splitting across threads
constexpr int64_t kSplitAlign = 16;  // split boundaries on multiples of the kernels' register blocking

// One GEMM on the calling thread. oneDNN's OpenMP team is kept at one thread (the OpenMP thread count is a
// per-thread setting, so each calling thread sets it once): all parallelism comes from our pool.
void sgemm_on_this_thread(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                          int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  thread_local const bool single_threaded = [] {
    omp_set_num_threads(1);
    return true;
  }();
  (void)single_threaded;
  const dnnl_status_t status = dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', m, n, k, alpha, a, lda, b, ldb,
                                          beta, c, ldc);
  KK_ASSERT(status == dnnl_success);
}

int64_t split_point(int64_t size, int64_t part, int64_t parts) {
  if (part >= parts) return size;
  return std::min(size, (size * part / parts + kSplitAlign / 2) / kSplitAlign * kSplitAlign);
}

}  // namespace

void sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
           const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  if (k == 0) {  // C = beta·C
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) c[i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
    return;
  }
  const int64_t parts = 2.0 * double(m) * double(n) * double(k) < kSplitFlops ? 1 : num_threads();
  const bool split_rows = m >= n;
  const int64_t extent = split_rows ? m : n;
  if (parts <= 1 || extent < 2 * kSplitAlign) {
    sgemm_on_this_thread(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
  parallel_for(parts, [&](int64_t begin, int64_t end) {
    const int64_t lo = split_point(extent, begin, parts), hi = split_point(extent, end, parts);
    if (hi <= lo) return;
    if (split_rows) {  // rows [lo, hi) of op(a) and c
      const float* a_part = trans_a ? a + lo : a + lo * lda;
      sgemm_on_this_thread(trans_a, trans_b, hi - lo, n, k, alpha, a_part, lda, b, ldb, beta, c + lo * ldc, ldc);
    } else {  // columns [lo, hi) of op(b) and c
      const float* b_part = trans_b ? b + lo * ldb : b + lo;
      sgemm_on_this_thread(trans_a, trans_b, m, hi - lo, k, alpha, a, lda, b_part, ldb, beta, c + lo, ldc);
    }
  });
}

void for_each_weight_panel(const TensorView& w, int64_t rows, int64_t k,
                           const std::function<void(int64_t, int64_t, const float*)>& fn, int64_t max_rows) {
  KK_ASSERT(w.numel() == rows * k && max_rows > 0);
  const bool in_place = w.dtype == DType::F32 && w.is_contiguous();
  const float* whole = in_place ? w.f32() : w.is_contiguous() ? nullptr : dense_f32(w, Slot::Weight).f32();
  int64_t panel_rows = std::min(rows, max_rows);
  const int64_t budget = scratch_limits().weight_panel;
  if (whole == nullptr && panel_rows * k > budget) {
    const int64_t fit = budget / std::max<int64_t>(k, 1);
    panel_rows = fit >= kSplitAlign ? fit / kSplitAlign * kSplitAlign : std::max<int64_t>(fit, 1);
  }
  float* panel = whole != nullptr ? nullptr : scratch(Slot::Weight).floats(size_t(std::min(rows, panel_rows) * k));
  const TensorView matrix = whole == nullptr ? w.reshape({rows, k}) : TensorView();
  for (int64_t first = 0; first < rows; first += panel_rows) {
    const int64_t n = std::min(panel_rows, rows - first);
    if (whole != nullptr) {
      fn(first, n, whole + first * k);
    } else {
      copy_strided(matrix.slice0(first, first + n), TensorView(panel, DType::F32, {n, k}));
      fn(first, n, panel);
    }
  }
}

}  // namespace kakusan::cpu
