#include "pipeline/encode_image.h"

#include <optional>
#include <vector>

#include "core/arena.h"
#include "core/error.h"
#include "nn/context.h"

namespace kakusan {

Tensor repeat_batch(Backend& backend, Tensor x, int64_t times) {
  if (times == 1) return x;
  Shape shape = x.shape();
  const int64_t n = shape[0];
  shape[0] = n * times;
  Tensor out = Tensor::empty(shape);
  for (int64_t k = 0; k < times; ++k) backend.copy(x, out.view().slice0(k * n, (k + 1) * n));
  return out;
}

Tensor encode_image_latents(const PhaseSetup& phase, const AutoencoderKL& vae, const Tensor& images,
                            GeneratorSet& generators, const VaeMemoryOptions& memory, int64_t& arena_peak) {
  const int64_t num_images = generators.num_images();
  const int64_t n = images.dim(0);
  KK_CHECK(n == 1 || n == num_images, "got ", n, " input images for a batch of ", num_images,
           ": give one image, or one per generated image");
  Arena arena(size_t(phase.arena_bytes));
  Context ctx{phase.backend, arena, phase.attention};
  Tensor latents;
  if (!generators.per_image()) {
    const DiagonalGaussianDistribution dist = vae.encode(ctx, images, memory);
    latents = repeat_batch(phase.backend, dist.sample(phase.backend, generators.shared()), num_images / n);
  } else {
    // Image i sampled with generator i; a single image is encoded once and sampled by every generator.
    std::vector<Tensor> samples;
    std::optional<DiagonalGaussianDistribution> single;
    if (n == 1) single = vae.encode(ctx, images, memory);
    for (int64_t i = 0; i < num_images; ++i) {
      Generator& generator = generators.for_image(int(i));
      samples.push_back(single ? single->sample(phase.backend, generator)
                               : vae.encode(ctx, images.view().slice0(i, i + 1), memory)
                                     .sample(phase.backend, generator));
    }
    Shape shape = samples.front().shape();
    shape[0] = num_images;
    latents = Tensor::empty(shape);
    for (int64_t i = 0; i < num_images; ++i)
      phase.backend.copy(samples[size_t(i)], latents.view().slice0(i, i + 1));
  }
  arena_peak = int64_t(arena.peak_bytes());
  phase.backend.scale(latents, vae.config().scaling_factor, latents);  // * scaling_factor, as torch rounds it
  return latents;
}

}  // namespace kakusan
