// The image steps on their own: get_timesteps' first step (scheduler order included), inpainting's mask
// downsampling and masked image, the 9-channel input layout, the blending hook of the one denoising loop,
// and encode_image's batch rules.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "backend/backend.h"
#include "core/error.h"
#include "pipeline/denoise.h"
#include "pipeline/inpaint.h"
#include "pipeline/prepare_image.h"
#include "pipeline/prepare_timesteps.h"

namespace kakusan {
namespace {

std::unique_ptr<Scheduler> scheduler(const char* name, int steps) {
  auto s = make_scheduler(name, JsonConfig(nlohmann::json::object(), "test"));
  prepare_timesteps(*s, steps, 0.0);
  return s;
}

TEST(FirstStepForStrength, IsTStartTimesTheSchedulersOrder) {
  EXPECT_EQ(first_step_for_strength(*scheduler("EulerDiscreteScheduler", 10), 10, 0.75), 3);  // int(7.5) = 7 run
  EXPECT_EQ(first_step_for_strength(*scheduler("EulerDiscreteScheduler", 10), 10, 1.0), 0);
  EXPECT_EQ(first_step_for_strength(*scheduler("HeunDiscreteScheduler", 10), 10, 0.75), 6);  // order 2
  EXPECT_EQ(first_step_for_strength(*scheduler("PNDMScheduler", 10), 10, 0.3), 7);  // of 11 timesteps: 4 run
  EXPECT_THROW(first_step_for_strength(*scheduler("EulerDiscreteScheduler", 10), 10, 0.09), Error);
}

Tensor filled(Shape shape, std::initializer_list<float> values) {
  Tensor t = Tensor::empty(std::move(shape));
  std::copy(values.begin(), values.end(), t.f32());
  return t;
}

TEST(Inpaint, LatentMaskIsNearestAndRepeated) {
  // 4x4 mask -> 2x2: rows/cols 0 and 2 are sampled (floor(dst * 2)).
  const Tensor mask = filled({1, 1, 4, 4}, {1, 0, 0, 0,  0, 0, 0, 0,  0, 0, 1, 1,  0, 0, 1, 1});
  const Tensor small = latent_mask(mask, 2, 2, 3);
  EXPECT_EQ(small.shape(), Shape({3, 1, 2, 2}));
  for (int b = 0; b < 3; ++b) {
    EXPECT_EQ(small.f32()[b * 4 + 0], 1.0f);
    EXPECT_EQ(small.f32()[b * 4 + 1], 0.0f);
    EXPECT_EQ(small.f32()[b * 4 + 2], 0.0f);
    EXPECT_EQ(small.f32()[b * 4 + 3], 1.0f);
  }
}

TEST(Inpaint, MaskedImageKeepsOnlyTheKnownRegion) {
  const Tensor image = Tensor::full({1, 3, 1, 2}, 0.5f);
  const Tensor mask = filled({1, 1, 1, 2}, {1, 0});  // 1 = repaint
  const Tensor masked = masked_image(image, mask);
  for (int c = 0; c < 3; ++c) {
    EXPECT_EQ(masked.f32()[c * 2 + 0], 0.0f);
    EXPECT_EQ(masked.f32()[c * 2 + 1], 0.5f);
  }
  EXPECT_THROW(masked_image(image, Tensor::full({1, 1, 2, 2}, 0.0f)), Error);
}

TEST(Inpaint, NineChannelInputIsLatentsMaskMaskedLatentsDoubledForCfg) {
  auto euler = scheduler("EulerDiscreteScheduler", 4);
  const Tensor mask = Tensor::full({1, 1, 2, 2}, 1.0f);
  const Tensor masked = Tensor::full({1, 4, 2, 2}, 3.0f);
  const MakeModelInput make = inpainting_model_input(*euler, true, mask, masked);
  const Tensor latents = Tensor::full({1, 4, 2, 2}, 2.0f);
  Tensor input = Tensor::empty({2, 9, 2, 2});
  make(latents, 0, input);
  const float scaled = 2.0f / std::sqrt(float(euler->sigmas()->at(0) * euler->sigmas()->at(0)) + 1.0f);
  for (int b = 0; b < 2; ++b)
    for (int c = 0; c < 9; ++c) {
      const float want = c < 4 ? scaled : c == 4 ? 1.0f : 3.0f;
      EXPECT_NEAR(input.f32()[(b * 9 + c) * 4], want, 1e-6f) << "batch " << b << " channel " << c;
    }
  Tensor wrong = Tensor::empty({2, 8, 2, 2});
  EXPECT_THROW(make(latents, 0, wrong), Error);
}

TEST(Inpaint, BlendingHookRunsAfterEveryStepOfTheLoop) {
  auto euler = scheduler("EulerDiscreteScheduler", 3);
  GeneratorSet generators({0}, {}, 1, 0);
  const Tensor image_latents = Tensor::full({1, 4, 1, 2}, 5.0f);
  const Tensor noise = Tensor::full({1, 4, 1, 2}, 1.0f);
  const Tensor mask = filled({1, 1, 1, 2}, {0, 1});  // pixel 0 known, pixel 1 repainted
  DenoiseOptions options;
  options.first_step = 1;
  options.after_step = blend_known_region(*euler, image_latents, noise, mask);
  std::vector<float> known;
  options.inspect = [&](std::string_view name, const TensorView& t) {
    if (name.starts_with("latents_after_step")) known.push_back(t.f32()[0]);
  };
  const NoiseModel model = [](const TensorView&, const TensorView&, const TensorView& noise_pred) {
    std::fill(noise_pred.f32(), noise_pred.f32() + noise_pred.numel(), 0.25f);
  };
  const Tensor out = denoise(cpu_backend(), *euler, generators, Tensor::full({1, 4, 1, 2}, 0.0f), model, options);
  // After step 1 the known pixel is the image latents noised to step 2 (5 + sigma_2 * 1); after the last,
  // the image latents themselves.
  ASSERT_EQ(known.size(), 2u);
  EXPECT_FLOAT_EQ(known[0], 5.0f + float(euler->sigmas()->at(2)));
  EXPECT_FLOAT_EQ(known[1], 5.0f);
  EXPECT_EQ(out.f32()[0], 5.0f);
  EXPECT_NE(out.f32()[1], 5.0f);  // the repainted pixel follows the scheduler
}

TEST(PrepareImage, SizeRuleAndNormalisation) {
  const Image image{13, 17, std::vector<uint8_t>(13 * 17 * 3, 255)};
  const ImageSize size = processed_size(image, 0, 0, 8);
  EXPECT_EQ(size.width, 8);
  EXPECT_EQ(size.height, 16);
  EXPECT_EQ(processed_size(image, 24, 32, 8).height, 24);
  EXPECT_THROW(processed_size(Image{7, 7, std::vector<uint8_t>(7 * 7 * 3)}, 0, 0, 8), Error);
  const Tensor x = preprocess_images({image}, {8, 8});
  EXPECT_EQ(x.shape(), Shape({1, 3, 8, 8}));
  EXPECT_EQ(x.f32()[0], 1.0f);  // 255 -> 1
  // Masks: luma >= 128 is 1. (127, 128, 129) grey and pure green (luma 150) / pure blue (luma 29).
  const Image mask{5, 1, {127, 127, 127, 128, 128, 128, 129, 129, 129, 0, 255, 0, 0, 0, 255}};
  const Tensor m = preprocess_masks({mask}, {1, 5});
  EXPECT_EQ(std::vector<float>(m.f32(), m.f32() + 5), (std::vector<float>{0, 1, 1, 1, 0}));
}

}  // namespace
}  // namespace kakusan
