// The image-latents step of image-to-image and inpainting: diffusers' retrieve_latents(vae.encode(image),
// generator) * scaling_factor (img2img's prepare_latents, inpainting's _encode_vae_image), drawing from the
// generator(s) as diffusers does (an AutoencoderTiny draws nothing):
//   one generator for the batch: the whole `images` batch is encoded and sampled with one draw;
//   one generator per image: image i (or the only image) is encoded and sampled with generator i, in order.
#pragma once

#include <cstdint>

#include "models/autoencoder.h"
#include "pipeline/generators.h"
#include "pipeline/step_common.h"

namespace kakusan {

// `images` (host) [n, 3, H, W] in [-1, 1] with n == 1 or generators.num_images(); encoded on the phase's
// backend; returns host latents [num_images, C, H/f, W/f] (a single image's latents repeated, as diffusers
// duplicates init_latents for the batch), beside the scheduler. `arena_peak` receives the arena's peak.
Tensor encode_image_latents(const PhaseSetup& phase, const Autoencoder& vae, const Tensor& images,
                            GeneratorSet& generators, const VaeMemoryOptions& memory, int64_t& arena_peak);

// Repeats a host [n, ...] tensor to [n * times, ...] (torch's cat([x] * times)): the batch of a single image.
Tensor repeat_batch(Tensor x, int64_t times);

}  // namespace kakusan
