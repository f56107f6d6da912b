// Inpainting's steps on top of image-to-image (diffusers' StableDiffusionInpaintPipeline):
//   the masked image, init_image * (mask < 0.5), whose latents an inpainting UNet sees;
//   prepare_mask_latents' mask, nearest-downsampled to the latents' size;
//   the 9-channel model input cat([scaled latents, mask, masked-image latents]) for inpainting UNets;
//   for ordinary 4-channel UNets, the blending after every step that puts the known region back, noised to
//   the next step with the run's initial noise.
#pragma once

#include <cstdint>
#include <functional>

#include "pipeline/denoise.h"
#include "schedulers/scheduler.h"

namespace kakusan {

// image [n, 3, H, W] * (mask [m, 1, H, W] < 0.5), m == n or one of them 1: [max(n, m), 3, H, W].
Tensor masked_image(const Tensor& image, const Tensor& mask);

// torch.nn.functional.interpolate(mask, size=(h, w)) (mode "nearest"), repeated to `batch` entries.
Tensor latent_mask(const Tensor& mask, int64_t h, int64_t w, int64_t batch);

// The 9-channel input (in_channels == latent channels + 1 + latent channels), written on the host like the
// default one: the default scaled input, then the mask and the masked image's latents (both repeated for
// classifier-free guidance's doubled batch). Borrows its arguments, host tensors of the latents' batch.
MakeModelInput inpainting_model_input(const Scheduler& scheduler, bool classifier_free_guidance, const Tensor& mask,
                                      const Tensor& masked_image_latents);

// The 4-channel UNet's blending after step i: latents = (1 - mask) * proper + mask * latents, proper being
// image_latents noised with `noise` to step i + 1 (add_noise_at_step), or image_latents after the last step.
// Borrows its arguments.
std::function<void(Tensor&, size_t)> blend_known_region(const Scheduler& scheduler, const Tensor& image_latents,
                                                       const Tensor& noise, const Tensor& mask);

}  // namespace kakusan
