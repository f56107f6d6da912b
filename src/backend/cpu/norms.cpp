// group_norm (+ fused activation) and layer_norm: two-pass statistics (mean, then Σ(x - mean)²) summed in
// double across blocks, as accurate as torch's float32 kernels or better.
#include <cmath>

#include "backend/cpu/kernels.h"
#include "backend/cpu/scratch.h"
#include "backend/cpu/vec_math.h"
#include "core/thread_pool.h"

namespace kakusan::cpu {

void group_norm(const GroupNormDims& d, const TensorView& x, int groups, const TensorView& gamma,
                const TensorView& beta, float eps, Activation act, const TensorView& y) {
  const float* input = dense_f32(x, Slot::Input).f32();
  const float* g = param_f32(gamma, Slot::Bias);
  const float* b = param_f32(beta, Slot::Beta);
  DenseOutput out(y, Slot::Output);
  float* output = out.data();
  const int64_t channels_per_group = d.channels / groups, per_group = channels_per_group * d.spatial;
  parallel_for(d.batch * groups, [&](int64_t begin, int64_t end) {
    for (int64_t unit = begin; unit < end; ++unit) {
      const float* src = input + unit * per_group;
      float* dst = output + unit * per_group;
      const double mean = row_sum(src, per_group) / double(per_group);
      const double var = row_sum_sq_dev(src, per_group, float(mean)) / double(per_group);
      const double rstd = 1.0 / std::sqrt(var + double(eps));
      const int64_t first_channel = unit % groups * channels_per_group;
      for (int64_t c = 0; c < channels_per_group; ++c) {
        const int64_t channel = first_channel + c;
        // y = (x - mean)·rstd·gamma + beta = x·scale + shift
        const float scale = float(rstd * (g != nullptr ? g[channel] : 1.0f));
        const float shift = float((b != nullptr ? b[channel] : 0.0f) - mean * rstd * (g != nullptr ? g[channel] : 1.0f));
        const float* s = src + c * d.spatial;
        float* o = dst + c * d.spatial;
        for (int64_t i = 0; i < d.spatial; ++i) o[i] = s[i] * scale + shift;
        if (act != Activation::None) apply_activation(act, o, o, d.spatial);
      }
    }
  });
  out.finish();
}

void layer_norm(const RowsDims& d, const TensorView& x, const TensorView& gamma, const TensorView& beta, float eps,
                const TensorView& y) {
  const float* input = dense_f32(x, Slot::Input).f32();
  const float* g = param_f32(gamma, Slot::Bias);
  const float* b = param_f32(beta, Slot::Beta);
  DenseOutput out(y, Slot::Output);
  float* output = out.data();
  parallel_for(d.rows, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const float* src = input + r * d.cols;
      float* dst = output + r * d.cols;
      const double mean = row_sum(src, d.cols) / double(d.cols);
      const double var = row_sum_sq_dev(src, d.cols, float(mean)) / double(d.cols);
      const float rstd = float(1.0 / std::sqrt(var + double(eps)));
      const float m = float(mean);
      for (int64_t j = 0; j < d.cols; ++j) {
        float v = (src[j] - m) * rstd;
        if (g != nullptr) v *= g[j];
        if (b != nullptr) v += b[j];
        dst[j] = v;
      }
    }
  }, std::max<int64_t>(1, 4096 / std::max<int64_t>(d.cols, 1)));
  out.finish();
}

}  // namespace kakusan::cpu
