// kakusan::Generator against torch.Generator("cpu"): every tensor of the kit's rng/rng.safetensors.
#include "core/generator.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdlib>
#include <set>
#include <string>
#include <vector>

#include "support/golden.h"

namespace kakusan {
namespace {

// Distance in units in the last place between two finite floats (0 for equal values, also +0/-0).
int64_t ulp_distance(float a, float b) {
  auto ordered = [](float f) {
    const int32_t i = std::bit_cast<int32_t>(f);
    return i < 0 ? int64_t(INT32_MIN) - int64_t(i) : int64_t(i);
  };
  return std::llabs(ordered(a) - ordered(b));
}

// "1x4x8x8" -> Shape{1, 4, 8, 8}
Shape parse_shape(const std::string& text) {
  Shape shape;
  size_t pos = 0;
  while (pos <= text.size()) {
    const size_t x = text.find('x', pos);
    const std::string part = text.substr(pos, x == std::string::npos ? std::string::npos : x - pos);
    shape.push_back(std::stoll(part));
    if (x == std::string::npos) break;
    pos = x + 1;
  }
  return shape;
}

struct Comparison {
  int64_t max_ulp = 0;
  double max_abs = 0;
};

Comparison compare(const Tensor& got, const TensorView& want) {
  EXPECT_EQ(got.shape(), want.shape);
  Comparison c;
  if (!(got.shape() == want.shape)) return c;
  for (int64_t i = 0; i < got.numel(); ++i) {
    const float g = got.f32()[i], w = want.f32()[i];
    c.max_ulp = std::max(c.max_ulp, ulp_distance(g, w));
    c.max_abs = std::max(c.max_abs, double(std::fabs(g - w)));
  }
  return c;
}

// The kit's tolerance: torch's large-tensor randn uses SIMD log/sin/cos, so <= 4 ulp (or atol 2e-6 for
// values near zero, where an ulp is tiny); rand and the small-tensor randn path are exact.
void expect_randn_close(const Tensor& got, const TensorView& want, const std::string& name) {
  EXPECT_EQ(got.shape(), want.shape) << name;
  if (!(got.shape() == want.shape)) return;
  int64_t bad = 0;
  for (int64_t i = 0; i < got.numel(); ++i) {
    const float g = got.f32()[i], w = want.f32()[i];
    if (ulp_distance(g, w) > 4 && std::fabs(g - w) > 2e-6f) ++bad;
  }
  EXPECT_EQ(bad, 0) << name << ": elements beyond 4 ulp / 2e-6, max ulp " << compare(got, want).max_ulp;
}

void expect_exact(const Tensor& got, const TensorView& want, const std::string& name) {
  const Comparison c = compare(got, want);
  EXPECT_EQ(c.max_ulp, 0) << name << ": max |diff| " << c.max_abs;
}

TEST(Generator, Mt19937MatchesTheStandardEngine) {
  // The C++ standard fixes the 10000th output of mt19937 seeded with 5489.
  Generator g(5489);
  uint32_t v = 0;
  for (int i = 0; i < 10000; ++i) v = g.next_u32();
  EXPECT_EQ(v, 4123659995u);
}

TEST(Generator, SeedUsesLow32Bits) {
  Generator a(0), b(uint64_t(1) << 32), c(~uint64_t(0)), d(0xffffffffu);
  for (int i = 0; i < 100; ++i) {
    const uint32_t x = a.next_u32();
    EXPECT_EQ(b.next_u32(), x);
    EXPECT_EQ(c.next_u32(), d.next_u32());
  }
  EXPECT_EQ(b.initial_seed(), uint64_t(1) << 32);  // the seed is remembered as given
}

TEST(Generator, Next64IsHighThenLow) {
  Generator a(7), b(7);
  const uint64_t hi = a.next_u32(), lo = a.next_u32();
  EXPECT_EQ(b.next_u64(), (hi << 32) | lo);
}

TEST(Generator, ManualSeedClearsTheCachedNormal) {
  Generator g(0);
  const Tensor first = g.randn(Shape{1});
  g.manual_seed(0);
  const Tensor again = g.randn(Shape{1});  // a cached sine half would have been returned here
  EXPECT_EQ(first.f32()[0], again.f32()[0]);
}

TEST(Generator, SmallPathCachesTheSecondValue) {
  Generator g(3);
  const double c = g.next_double_normal();
  const double s = g.next_double_normal();  // from the cache: no new draws
  Generator h(3);
  h.next_u64();
  h.next_u64();
  Generator k(3);
  k.next_double_normal();
  k.next_double_normal();
  EXPECT_EQ(k.next_u32(), h.next_u32());  // the second sample consumed no engine output
  EXPECT_NE(c, s);
}

TEST(Generator, LargePathDoesNotTouchTheCache) {
  Generator g(11);
  g.next_double_normal();  // leaves a cached value
  Generator h(11);
  const double second = [&] {
    h.next_double_normal();
    return h.next_double_normal();
  }();
  g.randn(Shape{32});
  EXPECT_EQ(g.next_double_normal(), second);
}

TEST(Generator, RandIsInUnitIntervalWith24Bits) {
  Generator g(99);
  const Tensor t = g.rand(Shape{4096});
  for (int64_t i = 0; i < t.numel(); ++i) {
    const float v = t.f32()[i];
    ASSERT_GE(v, 0.0f);
    ASSERT_LT(v, 1.0f);
    ASSERT_EQ(v * 16777216.0f, std::floor(v * 16777216.0f));
  }
}

// Every tensor of rng/rng.safetensors, decoded from its name (see the manifest's "rng" case).
TEST(GeneratorGolden, EveryCaseOfTheKit) {
  KK_REQUIRE_GOLDEN();
  const SafetensorsFile file = testing::open_golden("rng/rng.safetensors");
  ASSERT_GE(file.entries().size(), 36u);
  std::set<std::string> checked;

  // A sequence of draws from ONE generator, shapes from the manifest.
  const std::vector<Shape> sequence = {{1, 4, 8, 8}, {1, 4, 8, 8}, {3}, {1, 4, 8, 8}, {3}, {17}, {1}, {2, 4, 8, 8}};
  {
    Generator g(0);
    for (size_t i = 0; i < sequence.size(); ++i) {
      const std::string name = "seq_seed0_draw" + std::to_string(i);
      const Tensor got = g.randn(sequence[i]);
      if (sequence[i].numel() < 16) {
        expect_exact(got, file.view(name), name);
      } else {
        expect_randn_close(got, file.view(name), name);
      }
      checked.insert(name);
    }
  }
  {
    const std::string name = "global_manual_seed0_randn_1x4x8x8";
    Generator g(0);  // torch.manual_seed(0) seeds the default CPU generator the same way
    expect_randn_close(g.randn(Shape{1, 4, 8, 8}), file.view(name), name);
    checked.insert(name);
  }

  for (const auto& entry : file.entries()) {
    const std::string& name = entry.name;
    if (checked.count(name)) continue;
    const size_t seed_at = name.rfind("_seed");
    ASSERT_NE(seed_at, std::string::npos) << "unexpected tensor " << name;
    const uint64_t seed = std::stoull(name.substr(seed_at + 5));
    std::string head = name.substr(0, seed_at);  // e.g. "randn_small_2x3", "rand_5"
    Generator g(seed);
    if (head.rfind("rand_", 0) == 0) {
      expect_exact(g.rand(parse_shape(head.substr(5))), file.view(name), name);
    } else if (head.rfind("randn_small_", 0) == 0) {
      const Shape shape = parse_shape(head.substr(12));
      ASSERT_LT(shape.numel(), 16) << name;
      expect_exact(g.randn(shape), file.view(name), name);
    } else {
      ASSERT_EQ(head.rfind("randn_", 0), 0u) << "unexpected tensor " << name;
      const Shape shape = parse_shape(head.substr(6));
      ASSERT_GE(shape.numel(), 16) << name;
      expect_randn_close(g.randn(shape), file.view(name), name);
    }
    checked.insert(name);
  }
  EXPECT_EQ(checked.size(), file.entries().size());
}

}  // namespace
}  // namespace kakusan
