// A random generator that reproduces torch.Generator("cpu") bit for bit: same seed, same draws.
//
// torch's CPU generator is an mt19937 seeded with (seed & 0xffffffff). randn has two paths that must both be
// copied: tensors with numel >= 16 use a float32 Box-Muller over blocks of 16 uniforms (the last block is
// recomputed from fresh draws when numel % 16 != 0); smaller tensors use a double-precision Box-Muller per
// element that caches its second value in the generator. See ../shared/golden/README.md, "Quirks".
#pragma once

#include <array>
#include <cstdint>
#include <optional>

#include "core/tensor.h"

namespace kakusan {

class Generator {
 public:
  // torch's default seed for a fresh torch.Generator().
  static constexpr uint64_t kDefaultSeed = 67280421310721ull;

  explicit Generator(uint64_t seed = kDefaultSeed) { manual_seed(seed); }

  void manual_seed(uint64_t seed);
  uint64_t initial_seed() const { return seed_; }

  // torch.randn(shape, generator=this) / torch.rand(shape, generator=this), float32.
  Tensor randn(Shape shape);
  Tensor rand(Shape shape);
  void randn(float* out, int64_t n);
  void rand(float* out, int64_t n);

  // One sample of torch's at::normal_distribution<double> (the small-tensor path): returns the cached second
  // value of the previous Box-Muller pair if there is one, otherwise draws a new pair and caches its sine half.
  double next_double_normal();

  // The raw engine (mt19937 32-bit output), exposed for tests.
  uint32_t next_u32();
  uint64_t next_u64();

 private:
  void reseed_engine(uint32_t seed);

  uint64_t seed_ = 0;
  std::array<uint32_t, 624> state_{};
  int index_ = 0;
  std::optional<double> next_double_normal_;  // the cached second value of the small-tensor path
};

}  // namespace kakusan
