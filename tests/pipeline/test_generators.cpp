// GeneratorSet: diffusers' single generator vs generator list, checked against torch's own draws (the
// kit's init_noise of every pipeline case) and against the semantics spelled out in the kit's README.
#include <gtest/gtest.h>

#include <cstring>

#include "pipeline/generators.h"
#include "pipeline_cases.h"
#include "support/golden.h"

namespace kakusan {
namespace {

bool same_values(const TensorView& a, const TensorView& b) {
  return a.shape == b.shape && std::memcmp(a.data, b.data, a.nbytes()) == 0;
}

TEST(GeneratorSet, OneSeedIsOneSharedGeneratorDrawingTheWholeBatch) {
  GeneratorSet set({42}, {}, 3, 0);
  EXPECT_FALSE(set.per_image());
  const Tensor got = set.randn({3, 4, 9, 9});
  Generator torch_like(42);
  EXPECT_TRUE(same_values(got, torch_like.randn({3, 4, 9, 9})));
  EXPECT_EQ(set.image_seeds(), (std::vector<uint64_t>{42, 42, 42}));
}

TEST(GeneratorSet, SeedPerImageDrawsOneSampleFromEach) {
  GeneratorSet set({1, 1, 5}, {}, 3, 0);
  EXPECT_TRUE(set.per_image());
  const Tensor got = set.randn({3, 4, 8, 8});
  const Tensor one = Generator(1).randn({1, 4, 8, 8});
  const Tensor five = Generator(5).randn({1, 4, 8, 8});
  EXPECT_TRUE(same_values(got.view().slice0(0, 1), one));
  EXPECT_TRUE(same_values(got.view().slice0(1, 2), one));  // separate generators with equal seeds
  EXPECT_TRUE(same_values(got.view().slice0(2, 3), five));
  // Later draws (a stochastic scheduler's noise) come from each image's own generator.
  EXPECT_TRUE(same_values(set.for_image(2).randn({1, 4, 8, 8}), Generator(5).randn({2, 4, 8, 8}).view().slice0(1, 2)));
}

TEST(GeneratorSet, AliasedListAdvancesOneGeneratorPerImage) {
  // [g] * 2 with 9x9 latents: per-sample draws of 324 values (not a multiple of 16) differ from one draw of
  // 648, because torch recomputes the tail block of each call.
  GeneratorSet aliased({3}, {0, 0}, 2, 0);
  EXPECT_TRUE(aliased.per_image());
  const Tensor got = aliased.randn({2, 4, 9, 9});
  Generator g(3);
  const Tensor first = g.randn({1, 4, 9, 9});
  const Tensor second = g.randn({1, 4, 9, 9});
  EXPECT_TRUE(same_values(got.view().slice0(0, 1), first));
  EXPECT_TRUE(same_values(got.view().slice0(1, 2), second));
  EXPECT_FALSE(same_values(got, Generator(3).randn({2, 4, 9, 9})));
}

TEST(GeneratorSet, ListOfOneIsASingleGenerator) {
  GeneratorSet set({9}, {0}, 1, 0);
  EXPECT_FALSE(set.per_image());
  GeneratorSet random({}, {}, 2, 1234);
  EXPECT_FALSE(random.per_image());
  EXPECT_EQ(random.image_seeds(), (std::vector<uint64_t>{1234, 1234}));
}

// The kit's init_noise (randn_tensor inside diffusers) for every case, from the case's generator.
TEST(GeneratorSet, MatchesTheInitialNoiseOfEveryPipelineCase) {
  KK_REQUIRE_GOLDEN();
  int checked = 0;
  for (const testing::PipelineCase& c : testing::load_pipeline_cases()) {
    const SafetensorsFile file = SafetensorsFile::open(c.file);
    if (!file.contains("init_noise")) continue;
    const TensorView want = file.view("init_noise");
    GeneratorSet set(c.params.seeds, c.params.generator_index, int(want.dim(0)), 0);
    KK_EXPECT_CLOSE(set.randn(want.shape), want, c.rng_tolerance, c.id + " init_noise");
    ++checked;
  }
  EXPECT_GE(checked, 14);
}

}  // namespace
}  // namespace kakusan
