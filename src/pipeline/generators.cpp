#include "pipeline/generators.h"

namespace kakusan {

Generator GeneratorSpec::make(uint64_t seed) const {
  return device == GeneratorDevice::Cuda ? Generator::cuda(seed, launch, half_draws) : Generator(seed);
}

GeneratorSet::GeneratorSet(const std::vector<uint64_t>& seeds, const std::vector<int>& generator_index,
                           int num_images, uint64_t random_seed, const GeneratorSpec& spec)
    : num_images_(num_images) {
  KK_ASSERT(num_images >= 1);
  if (seeds.empty()) {
    generators_.push_back(spec.make(random_seed));
  } else {
    for (uint64_t seed : seeds) generators_.push_back(spec.make(seed));
  }
  // generators_ is complete: pointers into it stay valid from here on.
  for (int i = 0; i < num_images; ++i) {
    size_t index = 0;
    if (!generator_index.empty()) {
      KK_ASSERT(int(generator_index.size()) == num_images);
      index = size_t(generator_index[size_t(i)]);
    } else if (generators_.size() > 1) {
      KK_ASSERT(int(generators_.size()) == num_images);
      index = size_t(i);
    }
    KK_ASSERT(index < generators_.size());
    image_generators_.push_back(&generators_[index]);
  }
  // A list of one generator behaves as that generator (randn_tensor unwraps it).
  per_image_ = num_images > 1 && (!generator_index.empty() || generators_.size() > 1);
}

Generator& GeneratorSet::shared() {
  KK_ASSERT(!per_image_);
  return generators_[0];
}

Generator& GeneratorSet::for_image(int i) {
  KK_ASSERT(i >= 0 && i < num_images_);
  return *image_generators_[size_t(i)];
}

std::vector<uint64_t> GeneratorSet::image_seeds() const {
  std::vector<uint64_t> seeds;
  for (const Generator* g : image_generators_) seeds.push_back(g->initial_seed());
  return seeds;
}

NoiseSource GeneratorSet::noise_source() {
  return per_image_ ? NoiseSource(std::span<Generator* const>(image_generators_)) : NoiseSource(shared());
}

Tensor GeneratorSet::randn(Shape shape) {
  KK_ASSERT(!per_image_ || (shape.rank() >= 1 && shape[0] == num_images_));
  return noise_source().randn(shape);
}

}  // namespace kakusan
