#include "pipeline/encode_image.h"

#include <vector>

#include "backend/staged_tensor.h"
#include "core/arena.h"
#include "core/error.h"
#include "nn/context.h"

namespace kakusan {

Tensor repeat_batch(Tensor x, int64_t times) {
  if (times == 1) return x;
  Shape shape = x.shape();
  const int64_t n = shape[0];
  shape[0] = n * times;
  Tensor out = Tensor::empty(shape);
  for (int64_t k = 0; k < times; ++k) convert_into(x, out.view().slice0(k * n, (k + 1) * n));
  return out;
}

Tensor encode_image_latents(const PhaseSetup& phase, const Autoencoder& vae, const Tensor& images,
                            GeneratorSet& generators, const VaeMemoryOptions& memory, int64_t& arena_peak) {
  const int64_t num_images = generators.num_images();
  const int64_t n = images.dim(0);
  KK_CHECK(n == 1 || n == num_images, "got ", n, " input images for a batch of ", num_images,
           ": give one image, or one per generated image");
  Backend& backend = phase.backend;
  StagedTensor pixels(backend, images.shape());
  convert_into(images, pixels.host());
  pixels.upload();
  Arena arena(backend, size_t(phase.arena_bytes));
  Context ctx{backend, arena, phase.attention};
  // Encoded and drawn on the backend, times scaling_factor there (as torch rounds it), back to the host.
  const auto latents_of = [&](const TensorView& x, Generator& generator) {
    const Tensor sample = vae.encode_latents(ctx, x, memory, generator);
    backend.scale(sample, vae.scaling_factor(), sample);
    return host_copy(backend, sample);
  };
  Tensor latents;
  if (!generators.per_image()) {
    latents = repeat_batch(latents_of(pixels.on_backend(), generators.shared()), num_images / n);
  } else {
    // Image i (or the only image, as diffusers' image=[img] * n) encoded and drawn with generator i.
    for (int64_t i = 0; i < num_images; ++i) {
      const int64_t k = n == 1 ? 0 : i;
      const Tensor one = latents_of(pixels.on_backend().slice0(k, k + 1), generators.for_image(int(i)));
      if (!latents.defined()) {
        Shape shape = one.shape();
        shape[0] = num_images;
        latents = Tensor::empty(shape);
      }
      convert_into(one, latents.view().slice0(i, i + 1));
    }
  }
  arena_peak = int64_t(arena.peak_bytes());
  return latents;
}

}  // namespace kakusan
