#include "pipeline/prepare_image_latents.h"

#include <algorithm>

#include "core/error.h"
#include "pipeline/encode_image.h"
#include "pipeline/inpaint.h"
#include "pipeline/prepare_latents.h"
#include "pipeline/prepare_timesteps.h"

namespace kakusan {

ImageLatents prepare_image_latents(const PhaseSetup& vae_phase, const Autoencoder& vae, Scheduler& scheduler,
                                   GeneratorSet& generators, const ImageRequest& request, const Shape& latents_shape,
                                   int num_inference_steps, const VaeMemoryOptions& memory,
                                   const InspectTensor& inspect, int64_t& arena_peak) {
  ImageLatents out;
  out.first_step = first_step_for_strength(scheduler, num_inference_steps, request.strength);
  const bool inpainting = !request.masks.empty();
  const Tensor init_image = preprocess_images(request.images, request.size);
  if (inspect) inspect("init_image", init_image);
  const auto encode = [&](const Tensor& pixels) {
    int64_t peak = 0;
    Tensor latents = encode_image_latents(vae_phase, vae, pixels, generators, memory, peak);
    arena_peak = std::max(arena_peak, peak);
    return latents;
  };
  // diffusers' is_strength_max: inpainting at strength 1 starts from pure noise, like text-to-image.
  const bool from_noise = inpainting && request.strength == 1.0;
  Tensor image_latents;
  if (!from_noise || !request.inpainting_unet) image_latents = encode(init_image);
  Tensor noise = initial_noise(latents_shape, generators, request.given_noise, inspect);
  if (from_noise) {
    out.latents = Tensor::copy_of(noise);
    const float sigma = float(scheduler.init_noise_sigma());
    for (int64_t i = 0; i < out.latents.numel(); ++i) out.latents.f32()[i] *= sigma;
  } else {
    out.latents = scheduler.add_noise_at_step(image_latents, noise, size_t(out.first_step));
  }
  if (!inpainting) return out;

  const Tensor mask = preprocess_masks(request.masks, request.size);
  out.masked_image_latents = encode(masked_image(init_image, mask));
  out.mask = latent_mask(mask, latents_shape[2], latents_shape[3], latents_shape[0]);
  out.image_latents = std::move(image_latents);
  out.noise = std::move(noise);
  return out;
}

}  // namespace kakusan
