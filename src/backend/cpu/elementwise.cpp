// Elementwise and row-wise kernels: activation, add, geglu, nearest ×2 upsampling. Each works on dense
// float32 (strided or f16 inputs are made dense first) and splits its rows over the thread pool.
#include <algorithm>

#include "backend/cpu/kernels.h"
#include "backend/cpu/scratch.h"
#include "backend/cpu/vec_math.h"
#include "core/thread_pool.h"

namespace kakusan::cpu {
namespace {
constexpr int64_t kElementGrain = 1 << 14;  // elements below which another thread does not pay off

int64_t row_grain(int64_t cols) { return std::max<int64_t>(1, kElementGrain / std::max<int64_t>(cols, 1)); }
}  // namespace

void activation(const TensorView& x, Activation act, const TensorView& y) {
  const float* in = dense_f32(x, Slot::Input).f32();
  DenseOutput out(y, Slot::Output);
  float* o = out.data();
  parallel_for(x.numel(), [&](int64_t begin, int64_t end) {
    apply_activation(act, in + begin, o + begin, end - begin);
  }, kElementGrain);
  out.finish();
}

void add(const TensorView& a, const TensorView& b, const TensorView& y) {
  const float* pa = dense_f32(a, Slot::Input).f32();
  const float* pb = dense_f32(b, Slot::Input2).f32();
  DenseOutput out(y, Slot::Output);
  float* o = out.data();
  parallel_for(a.numel(), [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) o[i] = pa[i] + pb[i];
  }, kElementGrain);
  out.finish();
}

void geglu(const RowsDims& d, const TensorView& x, const TensorView& y) {
  const float* in = dense_f32(x, Slot::Input).f32();
  DenseOutput out(y, Slot::Output);
  float* o = out.data();
  parallel_for(d.rows, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const float* hidden = in + r * 2 * d.cols;
      const float* gate = hidden + d.cols;
      float* dst = o + r * d.cols;
      for (int64_t j = 0; j < d.cols; ++j) dst[j] = hidden[j] * gelu(gate[j]);
    }
  }, row_grain(d.cols));
  out.finish();
}

void upsample_nearest2x(const TensorView& x, const TensorView& y) {
  const float* in = dense_f32(x, Slot::Input).f32();
  DenseOutput out(y, Slot::Output);
  float* o = out.data();
  const int64_t h = x.dim(2), w = x.dim(3);
  // One unit = one input row, written to two output rows.
  parallel_for(x.dim(0) * x.dim(1) * h, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const float* src = in + r * w;
      float* dst = o + r * 4 * w;
      for (int64_t i = 0; i < w; ++i) dst[2 * i] = dst[2 * i + 1] = src[i];
      std::copy(dst, dst + 2 * w, dst + 2 * w);
    }
  }, row_grain(4 * w));
  out.finish();
}

}  // namespace kakusan::cpu
