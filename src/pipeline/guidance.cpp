#include "pipeline/guidance.h"

#include <cmath>

namespace kakusan {

namespace {

// torch.std over all but the first dimension: unbiased (divides by n - 1).
double sample_std(const float* x, int64_t n) {
  double mean = 0;
  for (int64_t i = 0; i < n; ++i) mean += x[i];
  mean /= double(n);
  double sum_squares = 0;
  for (int64_t i = 0; i < n; ++i) sum_squares += (x[i] - mean) * (x[i] - mean);
  return std::sqrt(sum_squares / double(n > 1 ? n - 1 : 1));
}

}  // namespace

void rescale_noise_cfg(const TensorView& noise_cfg, const TensorView& noise_pred_text, float guidance_rescale) {
  KK_ASSERT(noise_cfg.is_contiguous() && noise_pred_text.is_contiguous());
  KK_ASSERT(noise_cfg.shape == noise_pred_text.shape);
  const int64_t batch = noise_cfg.dim(0);
  const int64_t per_sample = noise_cfg.numel() / batch;
  for (int64_t b = 0; b < batch; ++b) {
    float* cfg = noise_cfg.f32() + b * per_sample;
    const float* text = noise_pred_text.f32() + b * per_sample;
    const float ratio = float(sample_std(text, per_sample) / sample_std(cfg, per_sample));
    for (int64_t i = 0; i < per_sample; ++i) {
      const float rescaled = cfg[i] * ratio;
      cfg[i] = guidance_rescale * rescaled + (1.0f - guidance_rescale) * cfg[i];
    }
  }
}

}  // namespace kakusan
