#include "pipeline/prepare_latents.h"

#include <cstring>

#include "core/error.h"

namespace kakusan {

void check_given_latents(const Shape& shape, std::span<const float> given) {
  KK_CHECK(given.empty() || int64_t(given.size()) == shape.numel(), "`latents` has ", given.size(),
           " values but the batch needs ", shape.str(), " = ", shape.numel());
}

Tensor initial_noise(const Shape& shape, GeneratorSet& generators, std::span<const float> given,
                     const InspectTensor& inspect) {
  check_given_latents(shape, given);
  Tensor latents;
  if (given.empty()) {
    latents = generators.randn(shape);
  } else {
    latents = Tensor::empty(shape);
    std::memcpy(latents.f32(), given.data(), latents.nbytes());
  }
  if (inspect) inspect("init_noise", latents);
  return latents;
}

Tensor prepare_latents(const Shape& shape, GeneratorSet& generators, std::span<const float> given,
                       double init_noise_sigma, const InspectTensor& inspect) {
  Tensor latents = initial_noise(shape, generators, given, inspect);
  const float sigma = float(init_noise_sigma);
  for (int64_t i = 0; i < latents.numel(); ++i) latents.f32()[i] *= sigma;
  return latents;
}

}  // namespace kakusan
