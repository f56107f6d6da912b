// Attention: every strategy of the fast backend against the reference and against each other, with causal
// masking, several heads, value width != key width, and q/k/v read as strided slices of a fused projection.
#include <gtest/gtest.h>

#include "attention_cases.h"
#include "backend/backend.h"
#include "random_tensors.h"
#include "support/golden.h"

namespace kakusan {
namespace {

using testing::AttentionCase;
using testing::attention_params_for;
using testing::for_each_cpu_strategy;
using testing::kStrategies;
using testing::random_attention_inputs;
using testing::random_tensor;
using testing::Strategy;
using testing::Tolerance;

constexpr Tolerance kAttention{1e-5, 1e-5};

class CpuAttention : public ::testing::TestWithParam<AttentionCase> {};

TEST_P(CpuAttention, EveryStrategyMatchesReference) {
  const AttentionCase& c = GetParam();
  const int64_t vw = c.heads * c.value_dim;
  const auto [q, k, v] = random_attention_inputs(c);
  AttentionParams p = attention_params_for(c);
  Tensor want = Tensor::empty({c.batch, c.q_len, vw});
  reference_backend().attention(q, k, v, p, want);
  Tensor first;
  for (const Strategy& s : kStrategies) {
    p.strategy = s.strategy;
    p.slice_size = s.slice_size;
    Tensor got = Tensor::full({c.batch, c.q_len, vw}, 1e30f);  // garbage that must be overwritten
    cpu_backend().attention(q, k, v, p, got);
    KK_EXPECT_CLOSE(got, want, kAttention, s.name);
    if (!first.defined())
      first = std::move(got);
    else
      KK_EXPECT_CLOSE(got, first, kAttention, std::string(s.name) + " vs full");
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, CpuAttention,
                         ::testing::Values(AttentionCase{1, 1, 1, 1, 1, 1, false},
                                           AttentionCase{1, 5, 7, 1, 3, 3, false},
                                           AttentionCase{2, 33, 77, 3, 8, 8, false},   // cross-attention
                                           AttentionCase{2, 300, 300, 2, 16, 16, false},  // several query tiles
                                           AttentionCase{1, 77, 77, 4, 8, 8, true},    // CLIP
                                           AttentionCase{2, 300, 300, 2, 5, 7, true},  // causal over tiles
                                           AttentionCase{1, 600, 40, 2, 4, 4, false},
                                           AttentionCase{1, 200, 1100, 2, 8, 8, false},  // several key tiles
                                           AttentionCase{1, 700, 700, 1, 4, 6, true},
                                           // SD head dim, partial query and key tiles of the transposed Flash
                                           AttentionCase{1, 130, 1030, 2, 40, 40, false}));

TEST(CpuAttention, ReadsSlicesOfAFusedProjection) {
  const int64_t batch = 2, tokens = 150, heads = 3, dim = 8, width = heads * dim;
  Tensor qkv = random_tensor({batch, tokens, 3 * width}, 34, 2.0f);
  TensorView q = qkv.view().narrow(2, 0, width), k = qkv.view().narrow(2, width, width),
             v = qkv.view().narrow(2, 2 * width, width);
  AttentionParams p;
  p.heads = int(heads);
  p.scale = 0.3f;
  Tensor want = Tensor::empty({batch, tokens, width});
  reference_backend().attention(q, k, v, p, want);
  for_each_cpu_strategy(q, k, v, p, {batch, tokens, width}, [&](const Strategy& s, const Tensor& got) {
    KK_EXPECT_CLOSE(got, want, kAttention, s.name);
  });
  // Into a strided output (a slice of a wider buffer) as well.
  Tensor wide = Tensor::full({batch, tokens, 2 * width}, -5.0f);
  p.strategy = AttentionStrategy::Flash;
  cpu_backend().attention(q, k, v, p, wide.view().narrow(2, width, width));
  Tensor back = Tensor::empty({batch, tokens, width});
  cpu_backend().copy(wide.view().narrow(2, width, width), back);
  KK_EXPECT_CLOSE(back, want, kAttention);
  EXPECT_EQ(wide.f32()[0], -5.0f);
}

TEST(CpuAttention, LargeScoresStayFinite) {
  // Scores around ±1000: without max subtraction exp() would overflow.
  Tensor q = random_tensor({1, 20, 4}, 35, 30.0f), k = random_tensor({1, 300, 4}, 36, 30.0f);
  Tensor v = random_tensor({1, 300, 4}, 37);
  AttentionParams p;
  Tensor want = Tensor::empty({1, 20, 4});
  reference_backend().attention(q, k, v, p, want);
  for (const Strategy& s : kStrategies) {
    p.strategy = s.strategy;
    Tensor got = Tensor::empty({1, 20, 4});
    cpu_backend().attention(q, k, v, p, got);
    KK_EXPECT_CLOSE(got, want, Tolerance{1e-4, 1e-4}, s.name);
  }
}

}  // namespace
}  // namespace kakusan
