// Step 3 of image-to-image and inpainting, in diffusers' order of generator draws:
//   img2img:    image latents (vae.encode(image).latent_dist.sample(generator) * scaling_factor), the noise,
//               latents = scheduler.add_noise(image latents, noise, first step);
//   inpainting: the image latents when needed (an ordinary UNet, or strength < 1), the noise, latents =
//               noise * init_noise_sigma at strength 1 or the noised image latents, then the masked image's
//               latents (always: prepare_mask_latents runs for both kinds of UNet) and the latent-sized mask.
#pragma once

#include <span>
#include <vector>

#include "kakusan/image.h"
#include "models/autoencoder.h"
#include "pipeline/generators.h"
#include "pipeline/prepare_image.h"
#include "pipeline/step_common.h"
#include "schedulers/scheduler.h"

namespace kakusan {

struct ImageRequest {
  const std::vector<Image>& images;
  const std::vector<Image>& masks;  // empty: image-to-image
  ImageSize size;                   // processed_size of the first image
  double strength = 1.0;
  bool inpainting_unet = false;     // the UNet takes the mask and masked-image latents (9 channels)
  std::span<const float> given_noise;
};

struct ImageLatents {
  Tensor latents;              // where the loop starts
  int first_step = 0;          // the scheduler step it starts at
  // Inpainting only (empty for image-to-image):
  Tensor image_latents, noise;             // the 4-channel UNet's blending re-noises image_latents with noise
  Tensor mask, masked_image_latents;       // [B, 1, h, w] and [B, C, h, w]
};

// `scheduler` has its timesteps set; `latents_shape` is [B, C, h, w]. `arena_peak` receives the VAE encoder's
// largest arena peak.
ImageLatents prepare_image_latents(const PhaseSetup& vae_phase, const Autoencoder& vae, Scheduler& scheduler,
                                   GeneratorSet& generators, const ImageRequest& request, const Shape& latents_shape,
                                   int num_inference_steps, const VaeMemoryOptions& memory,
                                   const InspectTensor& inspect, int64_t& arena_peak);

}  // namespace kakusan
