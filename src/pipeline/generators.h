// The generator(s) of one generate() call, with diffusers' two meanings of `generator`:
//
//   one torch.Generator shared by all images: one randn of the whole (B, 4, h, w) shape, and stochastic
//     schedulers draw their noise for the whole batch from it;
//   a list with one generator per image (randn_tensor's list path): image i draws a (1, 4, h, w) tensor from
//     generator i, in image order, and so does scheduler noise. The list's entries may be the same object
//     ([g] * 4), which then simply advances once per image.
//
// A list of length 1 is treated as a single generator, as diffusers does. Every generator of a set is of one
// kind: torch.Generator("cpu") or torch.Generator("cuda") (GeneratorSpec).
#pragma once

#include <cstdint>
#include <vector>

#include "core/generator.h"
#include "core/tensor.h"
#include "schedulers/scheduler.h"

namespace kakusan {

// The kind of generator a set makes.
struct GeneratorSpec {
  GeneratorDevice device = GeneratorDevice::Cpu;
  CudaLaunchShape launch;   // Cuda: the GPU whose launch grid torch's randn layout depends on
  bool half_draws = false;  // Cuda: the pipeline draws float16 noise (diffusers' fp16 pipelines)

  Generator make(uint64_t seed) const;
};

class GeneratorSet {
 public:
  // `seeds` empty: one generator seeded with `random_seed`; one seed: a shared generator; otherwise one
  // generator per image (seeds.size() == num_images), or, with `generator_index`, image i uses generator
  // generator_index[i] (entries may repeat). Counts are assumed checked (check_inputs).
  GeneratorSet(const std::vector<uint64_t>& seeds, const std::vector<int>& generator_index, int num_images,
               uint64_t random_seed, const GeneratorSpec& spec = {});
  GeneratorSet(const GeneratorSet&) = delete;  // hands out pointers to its generators
  GeneratorSet& operator=(const GeneratorSet&) = delete;

  int num_images() const { return num_images_; }
  // True for diffusers' generator list (per-image draws).
  bool per_image() const { return per_image_; }
  // The shared generator (per_image() == false).
  Generator& shared();
  // Image i's generator: its own in a list, the shared one otherwise.
  Generator& for_image(int i);
  // Each image's generator, in image order (entries repeat for a shared or aliased generator).
  const std::vector<Generator*>& image_generators() const { return image_generators_; }
  // The seed each image's generator was created with.
  std::vector<uint64_t> image_seeds() const;

  // diffusers' randn_tensor(shape, generator): shape[0] must be num_images() for a list.
  Tensor randn(Shape shape);
  // Where a scheduler's stochastic steps draw from (the same generator(s) as the latents).
  NoiseSource noise_source();

 private:
  std::vector<Generator> generators_;
  std::vector<Generator*> image_generators_;
  int num_images_;
  bool per_image_;
};

}  // namespace kakusan
