#include "pipeline/inpaint.h"

#include <algorithm>

#include "core/error.h"
#include "pipeline/encode_image.h"

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

Tensor latent_mask(Backend& backend, const Tensor& mask, int64_t h, int64_t w, int64_t batch) {
  const int64_t m = mask.dim(0);
  KK_CHECK(batch % m == 0, "cannot repeat ", m, " masks to a batch of ", batch);
  Tensor small = Tensor::empty({m, 1, h, w});
  backend.resize_nearest(mask, small);
  return repeat_batch(backend, std::move(small), batch / m);
}

MakeModelInput inpainting_model_input(Backend& backend, const Scheduler& scheduler, bool classifier_free_guidance,
                                      const Tensor& mask, const Tensor& masked_image_latents) {
  const MakeModelInput scaled = scaled_latents_input(backend, scheduler, classifier_free_guidance);
  return [&backend, &mask, &masked_image_latents, classifier_free_guidance, scaled](
             const Tensor& latents, size_t step, const TensorView& model_input) {
    const int64_t c = latents.dim(1);
    KK_CHECK(model_input.dim(1) == 2 * c + 1, "an inpainting UNet takes ", 2 * c + 1, " input channels (latents ",
             c, " + mask 1 + masked-image latents ", c, "), this one ", model_input.dim(1));
    Shape shape = model_input.shape;
    shape[1] = c;
    const Tensor latent_input = Tensor::empty(shape);  // scale_model_input works on a dense tensor
    scaled(latents, step, latent_input);
    backend.copy(latent_input, model_input.narrow(1, 0, c));
    const auto put = [&](const Tensor& x, int64_t first, int64_t channels) {
      const TensorView part = model_input.narrow(1, first, channels);
      if (classifier_free_guidance)
        duplicate_batch(backend, x, part);
      else
        backend.copy(x, part);
    };
    put(mask, c, 1);
    put(masked_image_latents, c + 1, c);
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
