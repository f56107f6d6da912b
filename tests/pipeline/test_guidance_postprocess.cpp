#include <gtest/gtest.h>

#include <cmath>

#include "pipeline/guidance.h"
#include "pipeline/postprocess.h"

namespace kakusan {
namespace {

TEST(Guidance, RescaleMatchesTextStdAtOneAndIsIdentityAtZero) {
  Tensor cfg = Tensor::empty({1, 4});
  Tensor text = Tensor::empty({1, 4});
  const float c[] = {0, 4, 8, 12}, t[] = {1, 2, 3, 4};
  std::copy(c, c + 4, cfg.f32());
  std::copy(t, t + 4, text.f32());
  Tensor same = cfg.clone();
  rescale_noise_cfg(same, text, 0.0f);
  for (int i = 0; i < 4; ++i) EXPECT_FLOAT_EQ(same.f32()[i], c[i]);
  rescale_noise_cfg(cfg, text, 1.0f);  // std(cfg) = 4 * std(text): scaled by 1/4
  for (int i = 0; i < 4; ++i) EXPECT_FLOAT_EQ(cfg.f32()[i], c[i] / 4);
}

TEST(Postprocess, DenormalizesClampsAndPermutesToNHWC) {
  Tensor decoded = Tensor::empty({1, 3, 1, 2});  // [c][w]
  const float v[] = {-1, 1, 0, 3, -3, 0.5f};
  std::copy(v, v + 6, decoded.f32());
  const Tensor images = denormalize_to_nhwc(decoded);
  ASSERT_EQ(images.shape(), (Shape{1, 1, 2, 3}));
  const float want[] = {0, 0.5f, 0, 1, 1, 0.75f};  // pixel 0: (r, g, b) = (-1, 0, -3) ...
  for (int i = 0; i < 6; ++i) EXPECT_FLOAT_EQ(images.f32()[i], want[i]) << i;
}

}  // namespace
}  // namespace kakusan
