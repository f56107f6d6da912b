// A random generator that reproduces torch.Generator("cpu") bit for bit: same seed, same draws; or, made with
// Generator::cuda, torch.Generator("cuda") (core/philox_generator.h) to within its documented error.
//
// torch's CPU generator is an mt19937 seeded with (seed & 0xffffffff). randn has two paths that must both be
// copied: tensors with numel >= 16 use a float32 Box-Muller over blocks of 16 uniforms (the last block is
// recomputed from fresh draws when numel % 16 != 0); smaller tensors use a double-precision Box-Muller per
// element that caches its second value in the generator. See ../shared/golden/README.md, "Quirks".
#pragma once

#include <array>
#include <cstdint>
#include <optional>

#include "core/philox_generator.h"
#include "core/tensor.h"

namespace kakusan {

// torch.Generator's `device`: which of torch's two generator algorithms draws the numbers.
enum class GeneratorDevice { Cpu, Cuda };

class Generator {
 public:
  // torch's default seed for a fresh torch.Generator().
  static constexpr uint64_t kDefaultSeed = 67280421310721ull;

  // torch.Generator("cpu").manual_seed(seed).
  explicit Generator(uint64_t seed = kDefaultSeed) { manual_seed(seed); }
  // torch.Generator("cuda").manual_seed(seed) on a GPU of the given launch shape. `half_draws`: the caller's
  // randn asks for float16 (diffusers' fp16 pipelines), so every draw is rounded to half (and widened back).
  static Generator cuda(uint64_t seed, CudaLaunchShape launch = {}, bool half_draws = false);

  GeneratorDevice device() const { return philox_ ? GeneratorDevice::Cuda : GeneratorDevice::Cpu; }
  void manual_seed(uint64_t seed);
  uint64_t initial_seed() const { return seed_; }

  // torch.randn(shape, generator=this) / torch.rand(shape, generator=this), float32. rand is the CPU
  // generator's only (nothing draws uniforms from a CUDA generator here); it throws Error on a CUDA one.
  Tensor randn(Shape shape);
  Tensor rand(Shape shape);
  void randn(float* out, int64_t n);
  void rand(float* out, int64_t n);

  // One sample of torch's at::normal_distribution<double> (the small-tensor path): returns the cached second
  // value of the previous Box-Muller pair if there is one, otherwise draws a new pair and caches its sine half.
  double next_double_normal();

  // The raw engine of the CPU generator (mt19937 32-bit output), exposed for tests.
  uint32_t next_u32();
  uint64_t next_u64();

 private:
  void reseed_engine(uint32_t seed);

  uint64_t seed_ = 0;
  std::array<uint32_t, 624> state_{};
  int index_ = 0;
  std::optional<double> next_double_normal_;  // the cached second value of the small-tensor path
  std::optional<PhiloxGenerator> philox_;     // set for a CUDA generator, which draws from it instead
  bool half_draws_ = false;
};

}  // namespace kakusan
