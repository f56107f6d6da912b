// fp16 / bf16 conversion: exhaustive over all 65536 bit patterns, ties, and the bulk (SIMD) paths.
#include "core/half.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <limits>
#include <vector>

namespace kakusan {
namespace {

bool f16_is_nan(uint16_t h) { return (h & 0x7c00u) == 0x7c00u && (h & 0x3ffu) != 0; }

// The exact value of a binary16 bit pattern, computed independently of half.h (finite values only).
double f16_value(uint16_t h) {
  const int exp = (h >> 10) & 0x1f;
  const int mant = h & 0x3ff;
  const double magnitude = exp == 0 ? std::ldexp(double(mant), -24) : std::ldexp(double(mant | 0x400), exp - 25);
  return (h & 0x8000) ? -magnitude : magnitude;
}

TEST(Half, F16ToF32IsExactForEveryFiniteValue) {
  for (uint32_t bits = 0; bits < 65536; ++bits) {
    const uint16_t h = uint16_t(bits);
    if ((h & 0x7c00u) == 0x7c00u) continue;
    const float f = f16_to_f32(h);
    ASSERT_EQ(double(f), f16_value(h)) << std::hex << bits;
    ASSERT_EQ(std::signbit(f), (h & 0x8000u) != 0) << std::hex << bits;  // -0 stays -0
  }
  EXPECT_EQ(f16_to_f32(0x7c00), std::numeric_limits<float>::infinity());
  EXPECT_EQ(f16_to_f32(0xfc00), -std::numeric_limits<float>::infinity());
  EXPECT_EQ(f16_to_f32(0x3c00), 1.0f);
  EXPECT_EQ(f16_to_f32(0x7bff), 65504.0f);
  EXPECT_EQ(f16_to_f32(0x0001), std::ldexp(1.0f, -24));
}

TEST(Half, RoundTripOfAll65536Values) {
  for (uint32_t bits = 0; bits < 65536; ++bits) {
    const uint16_t h = uint16_t(bits);
    const float f = f16_to_f32(h);
    if (f16_is_nan(h)) {
      ASSERT_TRUE(std::isnan(f)) << std::hex << bits;
      ASSERT_TRUE(f16_is_nan(f32_to_f16(f))) << std::hex << bits;
      continue;
    }
    ASSERT_EQ(f32_to_f16(f), h) << std::hex << bits;
  }
}

TEST(Half, F32ToF16RoundsToNearestEven) {
  // Between each pair of neighbouring finite halves a and b: the midpoint goes to the one with an even
  // mantissa, and the floats just below / above it go to a / b.
  for (uint32_t bits = 0; bits < 0x7bff; ++bits) {
    const uint16_t a = uint16_t(bits), b = uint16_t(bits + 1);
    const double mid = (f16_value(a) + f16_value(b)) / 2;
    const float m = float(mid);
    ASSERT_EQ(double(m), mid);  // every midpoint is exact in float32
    const uint16_t even = (a & 1u) ? b : a;
    ASSERT_EQ(f32_to_f16(m), even) << std::hex << bits;
    ASSERT_EQ(f32_to_f16(-m), uint16_t(even | 0x8000u)) << std::hex << bits;
    ASSERT_EQ(f32_to_f16(std::nextafter(m, 0.0f)), a) << std::hex << bits;
    ASSERT_EQ(f32_to_f16(std::nextafter(m, 1e9f)), b) << std::hex << bits;
  }
  // Overflow: 65520 is the midpoint between 65504 and the next (unrepresentable) step; ties go to inf.
  EXPECT_EQ(f32_to_f16(65519.996f), 0x7bff);
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7c00);
  EXPECT_EQ(f32_to_f16(1e10f), 0x7c00);
  EXPECT_EQ(f32_to_f16(-std::numeric_limits<float>::infinity()), 0xfc00);
  // Underflow: half of the smallest subnormal rounds to (even) zero, anything above to the subnormal.
  const float half_min = std::ldexp(1.0f, -25);
  EXPECT_EQ(f32_to_f16(half_min), 0x0000);
  EXPECT_EQ(f32_to_f16(std::nextafter(half_min, 1.0f)), 0x0001);
  EXPECT_EQ(f32_to_f16(-half_min), 0x8000);
  EXPECT_EQ(f32_to_f16(1e-30f), 0x0000);
  EXPECT_TRUE(f16_is_nan(f32_to_f16(std::numeric_limits<float>::quiet_NaN())));
}

TEST(Half, Bf16RoundTripAndTies) {
  for (uint32_t bits = 0; bits < 65536; ++bits) {
    const uint16_t b = uint16_t(bits);
    const float f = bf16_to_f32(b);
    ASSERT_EQ(std::bit_cast<uint32_t>(f), bits << 16);
    if (std::isnan(f)) {
      ASSERT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(f)))) << std::hex << bits;
      continue;
    }
    ASSERT_EQ(f32_to_bf16(f), b) << std::hex << bits;
    // The float halfway to the next bf16 pattern rounds to the even one of the two.
    if ((b & 0x7f80u) == 0x7f80u) continue;  // inf/NaN
    const uint32_t mid = (bits << 16) | 0x8000u;
    const uint16_t even = (b & 1u) ? uint16_t(b + 1) : b;
    ASSERT_EQ(f32_to_bf16(std::bit_cast<float>(mid)), even) << std::hex << bits;
    ASSERT_EQ(f32_to_bf16(std::bit_cast<float>(mid + 1)), uint16_t(b + 1)) << std::hex << bits;
    ASSERT_EQ(f32_to_bf16(std::bit_cast<float>(mid - 1)), b) << std::hex << bits;
  }
  // A NaN whose payload lies only in the low 16 bits must not become infinity.
  const float low_payload_nan = std::bit_cast<float>(0x7f800001u);
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(low_payload_nan))));
  EXPECT_EQ(f32_to_bf16(std::numeric_limits<float>::max()), 0x7f80);  // rounds up to inf, as torch
}

// The bulk converters (F16C where compiled in) agree with the scalar ones, including the tails.
TEST(Half, BulkMatchesScalar) {
  std::vector<uint16_t> all(65536 + 5);
  for (size_t i = 0; i < all.size(); ++i) all[i] = uint16_t(i * 40503u);
  std::vector<float> wide(all.size());
  convert_f16_to_f32(all.data(), wide.data(), all.size());
  for (size_t i = 0; i < all.size(); ++i) {
    if (f16_is_nan(all[i])) {
      ASSERT_TRUE(std::isnan(wide[i]));
    } else {
      ASSERT_EQ(std::bit_cast<uint32_t>(wide[i]), std::bit_cast<uint32_t>(f16_to_f32(all[i]))) << i;
    }
  }
  // Floats of every magnitude, including midpoints and subnormal results.
  std::vector<float> floats;
  uint32_t state = 1;
  for (int i = 0; i < 200003; ++i) {
    state = state * 1664525u + 1013904223u;
    const uint32_t exponent = 95 + uint32_t(i % 52);  // 2^-32 .. 2^19: underflow, subnormal, normal, overflow
    uint32_t bits = (state & 0x807fffffu) | (exponent << 23);
    if (i % 7 == 0) bits = (bits & ~0x1fffu) | 0x1000u;  // exactly halfway between two normal halves
    floats.push_back(std::bit_cast<float>(bits));
  }
  std::vector<uint16_t> narrow(floats.size()), bnarrow(floats.size());
  convert_f32_to_f16(floats.data(), narrow.data(), floats.size());
  convert_f32_to_bf16(floats.data(), bnarrow.data(), floats.size());
  for (size_t i = 0; i < floats.size(); ++i) {
    ASSERT_EQ(narrow[i], f32_to_f16(floats[i])) << std::hexfloat << floats[i];
    ASSERT_EQ(bnarrow[i], f32_to_bf16(floats[i])) << std::hexfloat << floats[i];
  }
  std::vector<float> back(floats.size());
  convert_bf16_to_f32(bnarrow.data(), back.data(), floats.size());
  for (size_t i = 0; i < floats.size(); ++i) ASSERT_EQ(back[i], bf16_to_f32(bnarrow[i]));
}

}  // namespace
}  // namespace kakusan
