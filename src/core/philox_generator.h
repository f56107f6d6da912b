// A random generator that reproduces torch.Generator("cuda"): torch.randn(shape, generator=g, device="cuda")
// computed on the CPU, for any device.
//
// torch's CUDA generator is cuRAND's Philox4x32-10 driven by a grid-stride kernel (ATen's
// distribution_nullary_kernel, DistributionTemplates.h). For one randn of n elements:
//   - the launch: 256-thread blocks, grid = min(ceil(n / 256), sm_count * (max_threads_per_sm / 256)),
//     stride S = 256 * grid; each thread loops R = ceil(n / (4 S)) times;
//   - thread t seeds curand_init(seed, subsequence = t, offset): the Philox counter is
//     (offset / 4 + round, t) as two 64-bit halves, the key the 64-bit seed;
//   - each round, curand_normal4 turns the counter's four 32-bit words into four normals with two float
//     Box-Muller transforms: words (0, 1) give s0 sin(v0), s0 cos(v0); words (2, 3) give s1 sin(v1), s1 cos(v1);
//   - component k of thread t's round r is element r * 4S + k * S + t (when < n);
//   - the generator's offset then advances by 4 R (CUDAGeneratorImpl::philox_cuda_state).
// So a draw that fits in one wave (n <= 256 x resident blocks; a 1x4x64x64 latent needs 64 blocks, which all
// but the smallest GPUs have) takes the sine half of each thread's first pair and does not depend on the GPU;
// larger draws (8x4x64x64 from ONE generator) spread over the four components and do: hence CudaLaunchShape.
//
// Precision: cuRAND computes the angle and radius in float and the sine/cosine with the __sincosf hardware
// approximation; here sin/cos are evaluated exactly on the same float angle, so values differ from a GPU's
// by the approximation's error only (2.7e-7 at most on the five values of seed 0 observed on a GPU).
#pragma once

#include <array>
#include <cstdint>

namespace kakusan {

// The two device properties torch's launch reads. Default: an NVIDIA T4 (40 SMs, Turing: 1024 threads per
// SM, so 160 resident 256-thread blocks), the free Colab GPU the diffusers tutorials were run on. Others:
// V100 80 x 2048, A100 108 x 2048, H100 SXM 132 x 2048, RTX 3090 82 x 1536, RTX 4090 128 x 1536.
struct CudaLaunchShape {
  int sm_count = 40;
  int max_threads_per_sm = 1024;

  // The accepted ranges (a launch needs room for one 256-thread block).
  static constexpr int kMaxSmCount = 100000;
  static constexpr int kMinThreadsPerSm = 256, kMaxThreadsPerSm = 65536;
};

class PhiloxGenerator {
 public:
  using Block = std::array<uint32_t, 4>;
  using Key = std::array<uint32_t, 2>;

  // torch's default seed for a fresh generator (c10's default_rng_seed_val).
  static constexpr uint64_t kDefaultSeed = 67280421310721ull;

  // Throws Error if the launch shape has no room for one 256-thread block.
  explicit PhiloxGenerator(uint64_t seed = kDefaultSeed, CudaLaunchShape launch = {});

  // As torch's manual_seed: the offset starts over at 0.
  void manual_seed(uint64_t seed);
  uint64_t initial_seed() const { return seed_; }
  // torch's philox_offset_per_thread (in 32-bit draws, a multiple of 4): where the next randn starts.
  uint64_t offset() const { return offset_; }
  const CudaLaunchShape& launch() const { return launch_; }

  // torch.randn(n elements, generator=this, device="cuda"), float32; `round_to_half` gives the float16 draw
  // (randn(..., dtype=torch.float16)) widened back to float: the same normals rounded to nearest even.
  void randn(float* out, int64_t n, bool round_to_half = false);

  // The Philox4x32-10 bijection, exposed for tests (Salmon et al. 2011; cuRAND's curand_Philox4x32_10).
  static Block philox4x32_10(Block counter, Key key);

 private:
  uint64_t seed_ = 0;
  uint64_t offset_ = 0;
  CudaLaunchShape launch_;
};

}  // namespace kakusan
