#include "pipeline/inpaint.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"

namespace kakusan {

Tensor masked_image(const Tensor& image, const Tensor& mask) {
  const int64_t n = image.dim(0), m = mask.dim(0), h = image.dim(2), w = image.dim(3);
  KK_CHECK(mask.dim(2) == h && mask.dim(3) == w, "the mask is ", mask.dim(3), "x", mask.dim(2), " but the image is ",
           w, "x", h);
  KK_CHECK(n == m || n == 1 || m == 1, "got ", n, " images and ", m, " masks: give one mask, or one per image");
  const int64_t batch = std::max(n, m), plane = h * w;
  Tensor out = Tensor::empty({batch, 3, h, w});
  // Host math: the input image, before any model runs.
  for (int64_t b = 0; b < batch; ++b) {
    const float* keep = mask.f32() + (m == 1 ? 0 : b) * plane;
    for (int64_t c = 0; c < 3; ++c) {
      const float* x = image.f32() + ((n == 1 ? 0 : b) * 3 + c) * plane;
      float* y = out.f32() + (b * 3 + c) * plane;
      for (int64_t i = 0; i < plane; ++i) y[i] = x[i] * (keep[i] < 0.5f ? 1.0f : 0.0f);
    }
  }
  return out;
}

Tensor latent_mask(const Tensor& mask, int64_t h, int64_t w, int64_t batch) {
  const int64_t m = mask.dim(0), in_h = mask.dim(2), in_w = mask.dim(3);
  KK_CHECK(batch % m == 0, "cannot repeat ", m, " masks to a batch of ", batch);
  Tensor out = Tensor::empty({batch, 1, h, w});
  // torch's nearest: source index floor(dst * (in / out)) in float32, clamped to the last row / column. On the
  // host, beside the latents and the scheduler that use it.
  const float scale_h = float(in_h) / float(h), scale_w = float(in_w) / float(w);
  for (int64_t b = 0; b < batch; ++b) {
    const float* src = mask.f32() + (b % m) * in_h * in_w;
    float* dst = out.f32() + b * h * w;
    for (int64_t y = 0; y < h; ++y) {
      const int64_t sy = std::min(int64_t(float(y) * scale_h), in_h - 1);
      for (int64_t x = 0; x < w; ++x)
        dst[y * w + x] = src[sy * in_w + std::min(int64_t(float(x) * scale_w), in_w - 1)];
    }
  }
  return out;
}

MakeModelInput inpainting_model_input(const Scheduler& scheduler, bool classifier_free_guidance, const Tensor& mask,
                                      const Tensor& masked_image_latents) {
  const MakeModelInput scaled = scaled_latents_input(scheduler, classifier_free_guidance);
  return [&mask, &masked_image_latents, scaled](const Tensor& latents, size_t step, const TensorView& model_input) {
    const int64_t c = latents.dim(1), batch = model_input.dim(0), plane = latents.dim(2) * latents.dim(3);
    KK_CHECK(model_input.dim(1) == 2 * c + 1, "an inpainting UNet takes ", 2 * c + 1, " input channels (latents ",
             c, " + mask 1 + masked-image latents ", c, "), this one ", model_input.dim(1));
    KK_ASSERT(model_input.on_host() && model_input.is_contiguous());
    Shape shape = model_input.shape;
    shape[1] = c;
    const Tensor latent_input = Tensor::empty(shape);  // the default input, then placed channel-wise
    scaled(latents, step, latent_input);
    // Item b of the (CFG-doubled) batch: its channels are one block of the host input.
    const auto put = [&](const float* src, int64_t first, int64_t channels, int64_t b) {
      std::memcpy(model_input.f32() + (b * (2 * c + 1) + first) * plane, src, size_t(channels * plane) * sizeof(float));
    };
    const int64_t images = mask.dim(0);
    for (int64_t b = 0; b < batch; ++b) {
      put(latent_input.f32() + b * c * plane, 0, c, b);
      put(mask.f32() + (b % images) * plane, c, 1, b);
      put(masked_image_latents.f32() + (b % images) * c * plane, c + 1, c, b);
    }
  };
}

std::function<void(Tensor&, size_t)> blend_known_region(const Scheduler& scheduler, const Tensor& image_latents,
                                                       const Tensor& noise, const Tensor& mask) {
  return [&scheduler, &image_latents, &noise, &mask](Tensor& latents, size_t step) {
    const bool last = step + 1 >= scheduler.timesteps().size();
    const Tensor noised = last ? Tensor() : scheduler.add_noise_at_step(image_latents, noise, step + 1);
    const float* proper = last ? image_latents.f32() : noised.f32();
    const int64_t batch = latents.dim(0), c = latents.dim(1), plane = latents.dim(2) * latents.dim(3);
    // Host math on the latents, like the scheduler's step.
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t ch = 0; ch < c; ++ch) {
        const float* m = mask.f32() + b * plane;
        float* x = latents.f32() + (b * c + ch) * plane;
        const float* p = proper + (b * c + ch) * plane;
        for (int64_t i = 0; i < plane; ++i) x[i] = (1.0f - m[i]) * p[i] + m[i] * x[i];
      }
  };
}

}  // namespace kakusan
