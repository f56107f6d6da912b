#include "pipeline/guidance.h"

#include <cmath>

namespace kakusan {

Tensor classifier_free_guidance(const TensorView& noise_pred, float guidance_scale) {
  KK_ASSERT(noise_pred.is_contiguous() && noise_pred.rank() >= 1 && noise_pred.dim(0) % 2 == 0);
  Shape shape = noise_pred.shape;
  shape[0] /= 2;
  Tensor out = Tensor::empty(shape);
  const int64_t n = shape.numel();
  const float* uncond = noise_pred.f32();
  const float* cond = uncond + n;
  float* y = out.f32();
  for (int64_t i = 0; i < n; ++i) {
    const float difference = cond[i] - uncond[i];
    const float scaled = guidance_scale * difference;  // two roundings, as torch's separate ops
    y[i] = uncond[i] + scaled;
  }
  return out;
}

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
