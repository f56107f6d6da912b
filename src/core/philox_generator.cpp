#include "core/philox_generator.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/half.h"

namespace kakusan {

namespace {

// Philox4x32's round multipliers and Weyl key increments.
constexpr uint32_t kMul0 = 0xD2511F53u;
constexpr uint32_t kMul1 = 0xCD9E8D57u;
constexpr uint32_t kWeyl0 = 0x9E3779B9u;
constexpr uint32_t kWeyl1 = 0xBB67AE85u;

// torch's launch constants (DistributionTemplates.h): block size, and the float4 of curand_normal4 each
// thread spreads over four grid strides.
constexpr int64_t kBlockSize = 256;
constexpr int64_t kUnroll = 4;
// Philox offset (in 32-bit draws) reserved per thread per round: one curand_normal4 uses one counter step.
constexpr uint64_t kOffsetPerRound = 4;

// cuRAND's float constants, formed as cuRAND forms them (float literals, a float product).
constexpr float k2Pow32Inv = 2.3283064e-10f;  // == 2^-32 exactly
constexpr float k2Pow32Inv2Pi = 2.3283064e-10f * 6.2831855f;

struct NormalPair {
  float sin_half, cos_half;
};

// cuRAND's _curand_box_muller on two 32-bit words. nvcc contracts `a * b + c` into an FMA, which matters for
// the angle (its constant is not a power of two); log and sqrt are correctly rounded here and at most an ulp
// off on the GPU. sin/cos are exact where the GPU uses __sincosf (see the header).
NormalPair box_muller(uint32_t x, uint32_t y) {
  const float u = std::fma(float(x), k2Pow32Inv, k2Pow32Inv / 2.0f);
  const float v = std::fma(float(y), k2Pow32Inv2Pi, k2Pow32Inv2Pi / 2.0f);
  const float s = std::sqrt(-2.0f * float(std::log(double(u))));
  return {float(std::sin(double(v))) * s, float(std::cos(double(v))) * s};
}

float to_half_and_back(float x) { return f16_to_f32(f32_to_f16(x)); }

}  // namespace

PhiloxGenerator::PhiloxGenerator(uint64_t seed, CudaLaunchShape launch) : launch_(launch) {
  KK_CHECK(launch.sm_count >= 1 && launch.sm_count <= CudaLaunchShape::kMaxSmCount,
           "CUDA generator: the multiprocessor count must be in 1..", CudaLaunchShape::kMaxSmCount, " but is ",
           launch.sm_count);
  KK_CHECK(launch.max_threads_per_sm >= CudaLaunchShape::kMinThreadsPerSm &&
               launch.max_threads_per_sm <= CudaLaunchShape::kMaxThreadsPerSm,
           "CUDA generator: the threads per multiprocessor must be in ", CudaLaunchShape::kMinThreadsPerSm, "..",
           CudaLaunchShape::kMaxThreadsPerSm, " but are ", launch.max_threads_per_sm);
  manual_seed(seed);
}

void PhiloxGenerator::manual_seed(uint64_t seed) {
  seed_ = seed;
  offset_ = 0;
}

PhiloxGenerator::Block PhiloxGenerator::philox4x32_10(Block c, Key k) {
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      k[0] += kWeyl0;
      k[1] += kWeyl1;
    }
    const uint64_t p0 = uint64_t(kMul0) * c[0];
    const uint64_t p1 = uint64_t(kMul1) * c[2];
    c = {uint32_t(p1 >> 32) ^ c[1] ^ k[0], uint32_t(p1), uint32_t(p0 >> 32) ^ c[3] ^ k[1], uint32_t(p0)};
  }
  return c;
}

void PhiloxGenerator::randn(float* out, int64_t n, bool round_to_half) {
  KK_ASSERT(n >= 0);
  if (n == 0) return;  // torch launches nothing and leaves the offset alone
  // The launch torch picks (calc_execution_policy).
  const int64_t resident_blocks = int64_t(launch_.sm_count) * (launch_.max_threads_per_sm / kBlockSize);
  const int64_t grid = std::min((n + kBlockSize - 1) / kBlockSize, resident_blocks);
  const int64_t stride = kBlockSize * grid;
  const int64_t rounds = (n - 1) / (stride * kUnroll) + 1;
  const Key key = {uint32_t(seed_), uint32_t(seed_ >> 32)};
  // curand_init's skipahead(offset): four 32-bit draws per step of the counter.
  const uint64_t first_counter = offset_ / kOffsetPerRound;
  for (int64_t r = 0; r < rounds; ++r) {
    const uint64_t counter = first_counter + uint64_t(r);
    const int64_t base = r * stride * kUnroll;
    for (int64_t t = 0; t < stride && base + t < n; ++t) {
      const Block words = philox4x32_10(
          {uint32_t(counter), uint32_t(counter >> 32), uint32_t(uint64_t(t)), uint32_t(uint64_t(t) >> 32)}, key);
      const NormalPair first = box_muller(words[0], words[1]);
      const int64_t e0 = base + t;
      out[e0] = first.sin_half;
      if (e0 + stride < n) out[e0 + stride] = first.cos_half;
      if (e0 + 2 * stride < n) {
        const NormalPair second = box_muller(words[2], words[3]);
        out[e0 + 2 * stride] = second.sin_half;
        if (e0 + 3 * stride < n) out[e0 + 3 * stride] = second.cos_half;
      }
    }
  }
  if (round_to_half)
    for (int64_t i = 0; i < n; ++i) out[i] = to_half_and_back(out[i]);
  // philox_cuda_state(4 R): already a multiple of 4.
  offset_ += uint64_t(rounds) * kOffsetPerRound;
}

}  // namespace kakusan
