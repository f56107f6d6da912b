// Step 3, diffusers' prepare_latents: the initial noise, from the caller or the generator(s), scaled by the
// scheduler's init_noise_sigma.
#pragma once

#include <span>

#include "pipeline/generators.h"
#include "pipeline/step_common.h"

namespace kakusan {

// Throws Error unless `given` is empty or holds shape.numel() values (generate() checks this before any work).
void check_given_latents(const Shape& shape, std::span<const float> given);

// The initial noise: `given` (row-major, shape.numel() values) when not empty, else randn(shape) from
// `generators`; inspected as "init_noise".
Tensor initial_noise(const Shape& shape, GeneratorSet& generators, std::span<const float> given,
                     const InspectTensor& inspect = {});

// initial_noise scaled by init_noise_sigma (text-to-image, and inpainting at strength 1).
Tensor prepare_latents(const Shape& shape, GeneratorSet& generators, std::span<const float> given,
                       double init_noise_sigma, const InspectTensor& inspect = {});

}  // namespace kakusan
