// The small ops that replaced host math in the models and the pipeline (resize_nearest, scale/divide,
// cfg_combine, timestep_embedding, embedding, gaussian_sample, blend_tiles): the reference against values
// worked out by hand or by torch's formula, and the CPU backend against the reference, dense and strided.
#include <gtest/gtest.h>

#include <cmath>

#include "backend/backend.h"
#include "random_tensors.h"
#include "support/golden.h"

namespace kakusan {
namespace {

using testing::random_tensor;
using testing::Tolerance;
constexpr Tolerance kSame{0, 0};

Backend& ref() { return reference_backend(); }
Backend& fast() { return cpu_backend(); }

Tensor values(Shape shape, std::initializer_list<float> v) {
  Tensor t = Tensor::empty(shape);
  KK_ASSERT(int64_t(v.size()) == t.numel());
  std::copy(v.begin(), v.end(), t.f32());
  return t;
}

// torch: F.interpolate(torch.arange(5.).view(1, 1, 1, 5), size=(1, 9), mode="nearest") = 0 0 1 1 2 2 3 3 4.
TEST(SmallOps, ResizeNearestFollowsTorch) {
  const Tensor x = values({1, 1, 1, 5}, {0, 1, 2, 3, 4});
  for (Backend* be : {&ref(), &fast()}) {
    SCOPED_TRACE(be->name());
    Tensor y = Tensor::empty({1, 1, 1, 9});
    be->resize_nearest(x, y);
    KK_EXPECT_CLOSE(y, values({1, 1, 1, 9}, {0, 0, 1, 1, 2, 2, 3, 3, 4}), kSame);
    Tensor z = Tensor::empty({1, 1, 2, 1});
    be->resize_nearest(x.view().reshape({1, 1, 5, 1}), z);  // downsizing too: rows 0 and floor(1 · 2.5) = 2
    KK_EXPECT_CLOSE(z, values({1, 1, 2, 1}, {0, 2}), kSame);
  }
  const Tensor big = random_tensor({2, 3, 11, 5}, 1);
  for (const Shape& out : {Shape{2, 3, 22, 10}, Shape{2, 3, 23, 9}, Shape{2, 3, 6, 3}}) {
    Tensor got = Tensor::empty(out), want = Tensor::empty(out);
    fast().resize_nearest(big, got);
    ref().resize_nearest(big, want);
    KK_EXPECT_CLOSE(got, want, kSame, out.str());
  }
  Tensor wrong = Tensor::empty({2, 4, 22, 10});
  EXPECT_THROW(fast().resize_nearest(big, wrong), Error);
}

TEST(SmallOps, ScaleDivideAndGuidanceRoundLikeTorch) {
  const Tensor x = random_tensor({2, 4, 3, 5}, 2, 3.0f);
  for (Backend* be : {&ref(), &fast()}) {
    SCOPED_TRACE(be->name());
    Tensor y = Tensor::empty(x.shape());
    be->divide(x, 0.18215f, y);
    for (int64_t i = 0; i < x.numel(); ++i) ASSERT_EQ(y.f32()[i], x.f32()[i] / 0.18215f) << i;
    be->scale(x, 14.6146f, y);
    for (int64_t i = 0; i < x.numel(); ++i) ASSERT_EQ(y.f32()[i], x.f32()[i] * 14.6146f) << i;
    Tensor guided = Tensor::empty({1, 4, 3, 5});
    be->cfg_combine(x, 7.5f, guided);
    const int64_t n = guided.numel();
    for (int64_t i = 0; i < n; ++i) {
      const float uncond = x.f32()[i], text = x.f32()[n + i];
      volatile float difference = text - uncond;  // volatile: each step rounded, as torch
      volatile float scaled = 7.5f * difference;
      ASSERT_EQ(guided.f32()[i], uncond + scaled) << i;
    }
    EXPECT_THROW(be->cfg_combine(x.view().slice0(0, 1), 7.5f, guided), Error);
  }
  // Strided operands go through the reference and agree with it.
  Tensor strided_got = Tensor::empty({2, 5, 3, 4}), strided_want = Tensor::empty({2, 5, 3, 4});
  fast().scale(x.view().permute({0, 3, 2, 1}), 0.5f, strided_got);
  ref().scale(x.view().permute({0, 3, 2, 1}), 0.5f, strided_want);
  KK_EXPECT_CLOSE(strided_got, strided_want, kSame);
}

TEST(SmallOps, TimestepEmbeddingMatchesTheFormula) {
  for (Backend* be : {&ref(), &fast()}) {
    SCOPED_TRACE(be->name());
    Tensor out = Tensor::empty({2, 8});
    be->timestep_embedding(values({2}, {10.0f, 0.5f}), /*flip_sin_to_cos=*/true, 0, out);
    for (int b = 0; b < 2; ++b) {
      const double t = b == 0 ? 10.0 : 0.5;
      for (int i = 0; i < 4; ++i) {
        const double f = std::exp(-std::log(10000.0) * i / 4.0);
        EXPECT_NEAR(out.f32()[b * 8 + i], std::cos(t * f), 1e-6);
        EXPECT_NEAR(out.f32()[b * 8 + 4 + i], std::sin(t * f), 1e-6);
      }
    }
    // One timestep is broadcast to the batch; without the flip, sin comes first.
    be->timestep_embedding(values({1}, {3.0f}), /*flip_sin_to_cos=*/false, 1, out);
    for (int i = 0; i < 8; ++i) EXPECT_EQ(out.f32()[i], out.f32()[8 + i]);
    EXPECT_NEAR(out.f32()[1], std::sin(3.0 * std::exp(-std::log(10000.0) / 3.0)), 1e-6);
    EXPECT_THROW(be->timestep_embedding(values({3}, {1.0f, 2.0f, 3.0f}), true, 0, out), Error);
    // An odd width ends in a zero column.
    Tensor odd = Tensor::full({1, 5}, 7.0f);
    be->timestep_embedding(values({1}, {981.0f}), true, 0, odd);
    EXPECT_EQ(odd.f32()[4], 0.0f);
  }
  Tensor got = Tensor::empty({3, 320}), want = Tensor::empty({3, 320});
  const Tensor t = values({3}, {981.0f, 945.712890625f, 1.0f});
  fast().timestep_embedding(t, true, 0, got);
  ref().timestep_embedding(t, true, 0, want);
  KK_EXPECT_CLOSE(got, want, kSame);
}

TEST(SmallOps, EmbeddingGathersRowsAndRejectsBadIds) {
  const Tensor table = random_tensor({6, 4}, 3);
  const Tensor half_table = table.to(DType::F16);
  Tensor ids = Tensor::empty({2, 3}, DType::I64);
  const int64_t chosen[] = {5, 0, 2, 2, 1, 5};
  for (int i = 0; i < 6; ++i) ids.i64()[i] = chosen[i];
  for (Backend* be : {&ref(), &fast()}) {
    SCOPED_TRACE(be->name());
    Tensor y = Tensor::empty({2, 3, 4});
    be->embedding(table, ids, y);
    for (int i = 0; i < 6; ++i)
      for (int j = 0; j < 4; ++j) ASSERT_EQ(y.f32()[i * 4 + j], table.f32()[chosen[i] * 4 + j]);
    Tensor from_half = Tensor::empty({2, 3, 4});
    be->embedding(half_table, ids, from_half);
    KK_EXPECT_CLOSE(from_half, y, Tolerance{1e-3, 1e-3});
    Tensor column = Tensor::empty({2, 4});  // strided ids: the first column
    be->embedding(table, ids.view().as_strided({2}, {3}), column);
    EXPECT_EQ(column.f32()[4], table.f32()[2 * 4]);
    ids.i64()[4] = 6;
    try {
      be->embedding(table, ids, y);
      FAIL() << "id 6 of a 6-row table was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("id 6"), std::string::npos) << e.what();
    }
    ids.i64()[4] = 1;
  }
}

TEST(SmallOps, GaussianSampleClampsLogvar) {
  Tensor moments = random_tensor({2, 8, 3, 5}, 4);
  moments.f32()[4 * 15] = 50.0f;   // sample 0, logvar channel 0: clamped to 20
  moments.f32()[4 * 15 + 1] = -80.0f;  // clamped to -30
  const Tensor noise = random_tensor({2, 4, 3, 5}, 5);
  for (Backend* be : {&ref(), &fast()}) {
    SCOPED_TRACE(be->name());
    Tensor y = Tensor::empty({2, 4, 3, 5});
    be->gaussian_sample(moments, noise, y);
    for (int64_t b = 0; b < 2; ++b)
      for (int64_t i = 0; i < 60; ++i) {
        const float mean = moments.f32()[b * 120 + i], logvar = moments.f32()[b * 120 + 60 + i];
        const double std = std::exp(0.5 * std::clamp(double(logvar), -30.0, 20.0));
        ASSERT_NEAR(y.f32()[b * 60 + i], mean + std * noise.f32()[b * 60 + i], 1e-5 * (1 + std)) << b << " " << i;
      }
  }
  Tensor got = Tensor::empty({2, 4, 3, 5}), want = Tensor::empty({2, 4, 3, 5});
  fast().gaussian_sample(moments, noise, got);
  ref().gaussian_sample(moments, noise, want);
  KK_EXPECT_CLOSE(got, want, kSame);
}

TEST(SmallOps, BlendTilesFadesInTheNeighbour) {
  const Tensor a = random_tensor({1, 2, 6, 7}, 6), b0 = random_tensor({1, 2, 5, 4}, 7);
  for (bool vertical : {true, false}) {
    SCOPED_TRACE(vertical ? "vertical" : "horizontal");
    Tensor got = b0.clone(), want = b0.clone();
    fast().blend_tiles(a, got, 3, vertical);
    ref().blend_tiles(a, want, 3, vertical);
    KK_EXPECT_CLOSE(got, want, kSame);
    // Row/column 1 of 3: b = a_last · 2/3 + b · 1/3; beyond the extent b is untouched.
    const int64_t c = 1, k = 1;
    const float from_a = vertical ? a.f32()[(c * 6 + 6 - 3 + k) * 7 + 2] : a.f32()[(c * 6 + 2) * 7 + 7 - 3 + k];
    const float from_b = vertical ? b0.f32()[(c * 5 + k) * 4 + 2] : b0.f32()[(c * 5 + 2) * 4 + k];
    const float blended = vertical ? want.f32()[(c * 5 + k) * 4 + 2] : want.f32()[(c * 5 + 2) * 4 + k];
    EXPECT_NEAR(blended, from_a * (2.0f / 3) + from_b * (1.0f / 3), 1e-6);
    EXPECT_EQ(want.f32()[(c * 5 + 3) * 4 + 3], b0.f32()[(c * 5 + 3) * 4 + 3]);
    // An extent beyond the tiles is capped at their size.
    Tensor capped = b0.clone(), capped_want = b0.clone();
    fast().blend_tiles(a, capped, 100, vertical);
    ref().blend_tiles(a, capped_want, 100, vertical);
    KK_EXPECT_CLOSE(capped, capped_want, kSame);
  }
}

}  // namespace
}  // namespace kakusan
