// Step 5, diffusers' vae.decode(latents / scaling_factor) and image_processor.postprocess: latents to images
// in [0, 1], NHWC.
#pragma once

#include <cstdint>

#include "models/autoencoder.h"
#include "pipeline/step_common.h"

namespace kakusan {

// latents [B, latent_channels, h, w] -> [B, H, W, 3]; `arena_peak` receives the arena's measured peak.
Tensor decode(const PhaseSetup& phase, const Autoencoder& vae, const Tensor& latents,
              const VaeMemoryOptions& memory, int64_t& arena_peak);

}  // namespace kakusan
