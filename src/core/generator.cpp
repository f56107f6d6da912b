#include "core/generator.h"

#include <cmath>
#include <numbers>

namespace kakusan {

namespace {

constexpr int kStateSize = 624;
constexpr int kShift = 397;
constexpr uint32_t kMatrixA = 0x9908b0dfu;

// torch's float path: 24 random bits scaled into [0, 1), exactly representable in float32.
float uniform24(uint32_t bits) { return float(bits & 0xffffffu) * 0x1.0p-24f; }

// torch's double path: 53 random bits (from one 64-bit draw) scaled into [0, 1).
double uniform53(uint64_t bits) { return double(bits & ((uint64_t(1) << 53) - 1)) * 0x1.0p-53; }

// Box-Muller over 16 uniforms in place: pairs (j, j + 8) become two normals. torch computes this in float32
// with SIMD approximations of log/sin/cos; evaluating them in double and rounding gives the correctly rounded
// float result, which stays within a few ulp of torch's.
void box_muller_16(float* data) {
  for (int j = 0; j < 8; ++j) {
    const float u1 = 1.0f - data[j];  // [0, 1) -> (0, 1] so that log() is finite
    const float u2 = data[j + 8];
    const float log_u1 = float(std::log(double(u1)));
    const float radius = std::sqrt(-2.0f * log_u1);
    const float theta = float(2.0 * std::numbers::pi) * u2;
    data[j] = radius * float(std::cos(double(theta)));
    data[j + 8] = radius * float(std::sin(double(theta)));
  }
}

}  // namespace

Generator Generator::cuda(uint64_t seed, CudaLaunchShape launch, bool half_draws) {
  Generator g(seed);
  g.philox_.emplace(seed, launch);
  g.half_draws_ = half_draws;
  return g;
}

void Generator::manual_seed(uint64_t seed) {
  seed_ = seed;
  if (philox_) philox_->manual_seed(seed);
  next_double_normal_.reset();
  reseed_engine(uint32_t(seed & 0xffffffffu));
}

void Generator::reseed_engine(uint32_t seed) {
  // The standard mt19937 initialisation (Knuth's multiplier), as torch's at::mt19937 does.
  state_[0] = seed;
  for (int i = 1; i < kStateSize; ++i)
    state_[i] = 1812433253u * (state_[i - 1] ^ (state_[i - 1] >> 30)) + uint32_t(i);
  index_ = kStateSize;  // forces a twist before the first output
}

uint32_t Generator::next_u32() {
  KK_ASSERT(!philox_);
  if (index_ >= kStateSize) {
    for (int i = 0; i < kStateSize; ++i) {
      const uint32_t y = (state_[i] & 0x80000000u) | (state_[(i + 1) % kStateSize] & 0x7fffffffu);
      state_[i] = state_[(i + kShift) % kStateSize] ^ (y >> 1) ^ ((y & 1u) ? kMatrixA : 0u);
    }
    index_ = 0;
  }
  uint32_t y = state_[index_++];
  y ^= y >> 11;
  y ^= (y << 7) & 0x9d2c5680u;
  y ^= (y << 15) & 0xefc60000u;
  y ^= y >> 18;
  return y;
}

uint64_t Generator::next_u64() {
  // torch's random64(): the first draw is the high half.
  const uint64_t hi = next_u32();
  const uint64_t lo = next_u32();
  return (hi << 32) | lo;
}

double Generator::next_double_normal() {
  KK_ASSERT(!philox_);
  if (next_double_normal_) {
    const double cached = *next_double_normal_;
    next_double_normal_.reset();
    return cached;
  }
  const double u1 = uniform53(next_u64());
  const double u2 = uniform53(next_u64());
  const double radius = std::sqrt(-2.0 * std::log(1.0 - u2));
  const double theta = 2.0 * std::numbers::pi * u1;
  next_double_normal_ = radius * std::sin(theta);
  return radius * std::cos(theta);
}

void Generator::randn(float* out, int64_t n) {
  KK_ASSERT(n >= 0);
  if (philox_) {
    philox_->randn(out, n, half_draws_);
    return;
  }
  if (n < 16) {
    // torch's element-wise path for small tensors: one double normal per element, cast to float.
    for (int64_t i = 0; i < n; ++i) out[i] = float(next_double_normal());
    return;
  }
  for (int64_t i = 0; i < n; ++i) out[i] = uniform24(next_u32());
  for (int64_t i = 0; i + 16 <= n; i += 16) box_muller_16(out + i);
  if (n % 16 != 0) {
    // torch redraws the last 16 values from fresh uniforms, overwriting the end of the last full block.
    float* tail = out + n - 16;
    for (int i = 0; i < 16; ++i) tail[i] = uniform24(next_u32());
    box_muller_16(tail);
  }
}

void Generator::rand(float* out, int64_t n) {
  KK_ASSERT(n >= 0);
  KK_CHECK(!philox_, "rand: uniform draws from a CUDA generator are not implemented (randn is)");
  for (int64_t i = 0; i < n; ++i) out[i] = uniform24(next_u32());
}

Tensor Generator::randn(Shape shape) {
  Tensor t = Tensor::empty(shape, DType::F32);
  randn(t.f32(), t.numel());
  return t;
}

Tensor Generator::rand(Shape shape) {
  Tensor t = Tensor::empty(shape, DType::F32);
  rand(t.f32(), t.numel());
  return t;
}

}  // namespace kakusan
