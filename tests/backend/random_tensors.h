// Deterministic random tensors for the backend tests.
#pragma once

#include <cmath>
#include <cstdint>
#include <random>

#include "core/tensor.h"

namespace kakusan::testing {

// Normal(0, scale²) values, seeded, so every failure reproduces.
inline Tensor random_tensor(Shape shape, uint32_t seed, float scale = 1.0f) {
  Tensor t = Tensor::empty(shape);
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, scale);
  float* p = t.f32();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = normal(rng);
  return t;
}

// Weights scaled like PyTorch's default init (so GEMM outputs stay O(1)), stored as `dtype`.
inline Tensor random_weights(Shape shape, int64_t fan_in, uint32_t seed, DType dtype = DType::F32) {
  Tensor t = random_tensor(shape, seed, 1.0f / std::sqrt(float(std::max<int64_t>(fan_in, 1))));
  return dtype == DType::F32 ? std::move(t) : t.to(dtype);
}

}  // namespace kakusan::testing
