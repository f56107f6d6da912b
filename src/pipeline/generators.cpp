#include "pipeline/generators.h"

#include <cstring>

namespace kakusan {

GeneratorSet::GeneratorSet(const std::vector<uint64_t>& seeds, const std::vector<int>& generator_index,
                           int num_images, uint64_t random_seed)
    : num_images_(num_images) {
  KK_ASSERT(num_images >= 1);
  if (seeds.empty()) {
    generators_.emplace_back(random_seed);
  } else {
    for (uint64_t seed : seeds) generators_.emplace_back(seed);
  }
  if (!generator_index.empty()) {
    KK_ASSERT(int(generator_index.size()) == num_images);
    image_generator_ = generator_index;
  } else if (generators_.size() == 1) {
    image_generator_.assign(size_t(num_images), 0);
  } else {
    KK_ASSERT(int(generators_.size()) == num_images);
    for (int i = 0; i < num_images; ++i) image_generator_.push_back(i);
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
  return generators_[size_t(image_generator_[size_t(i)])];
}

std::vector<uint64_t> GeneratorSet::image_seeds() const {
  std::vector<uint64_t> seeds;
  for (int index : image_generator_) seeds.push_back(generators_[size_t(index)].initial_seed());
  return seeds;
}

Tensor GeneratorSet::randn(Shape shape) {
  if (!per_image_) return shared().randn(shape);
  KK_ASSERT(shape.rank() >= 1 && shape[0] == num_images_);
  Shape one = shape;
  one[0] = 1;
  Tensor out = Tensor::empty(shape);
  const int64_t per_sample = one.numel();
  for (int i = 0; i < num_images_; ++i) {
    Tensor sample = for_image(i).randn(one);
    std::memcpy(out.f32() + i * per_sample, sample.f32(), size_t(per_sample) * sizeof(float));
  }
  return out;
}

}  // namespace kakusan
