// The pipeline's shared steps on their own: prepare_latents with given latents, the one denoising loop from a
// later first step (img2img's t_start) with a fake noise model, a custom model input with more channels than
// the latents (inpainting's 9), and the backend's attention scratch that the memory planner asks for.
#include <gtest/gtest.h>

#include <cstring>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "backend/backend.h"
#include "backend/cpu/gemm.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "pipeline/denoise.h"
#include "pipeline/memory_plan.h"
#include "pipeline/prepare_latents.h"
#include "pipeline/prepare_timesteps.h"

namespace kakusan {
namespace {

bool same_values(const TensorView& a, const TensorView& b) {
  return a.shape == b.shape && std::memcmp(a.data, b.data, a.nbytes()) == 0;
}

std::unique_ptr<Scheduler> euler(int steps) {
  auto scheduler = make_scheduler("EulerDiscreteScheduler", JsonConfig(nlohmann::json::object(), "test"));
  prepare_timesteps(*scheduler, steps, 0.0);
  return scheduler;
}

TEST(PrepareLatents, GivenLatentsAreScaledByInitNoiseSigmaAndInspectedBefore) {
  GeneratorSet generators({7}, {}, 1, 0);
  const std::vector<float> given{1, -2, 3, 0.5f, 4, 5, 6, 7};
  Tensor seen;
  const Tensor latents = prepare_latents({1, 2, 2, 2}, generators, given, 2.5,
                                         [&](std::string_view name, const TensorView& t) {
                                           EXPECT_EQ(name, "init_noise");
                                           seen = Tensor::copy_of(t);
                                         });
  ASSERT_TRUE(seen.defined());
  for (size_t i = 0; i < given.size(); ++i) {
    EXPECT_EQ(seen.f32()[i], given[i]);
    EXPECT_EQ(latents.f32()[i], given[i] * 2.5f);
  }
}

TEST(PrepareLatents, DrawsFromTheGeneratorWhenNoneAreGiven) {
  GeneratorSet generators({42}, {}, 2, 0);
  const Tensor latents = prepare_latents({2, 4, 3, 3}, generators, {}, 1.0);
  EXPECT_TRUE(same_values(latents, Generator(42).randn({2, 4, 3, 3})));
}

TEST(PrepareLatents, WrongNumberOfGivenValuesIsAnError) {
  GeneratorSet generators({1}, {}, 1, 0);
  const std::vector<float> given(7, 0.0f);
  try {
    prepare_latents({1, 4, 2, 2}, generators, given, 1.0);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("`latents` has 7 values but the batch needs"), std::string::npos) << e.what();
  }
}

TEST(DuplicateBatch, WritesTheBatchTwice) {
  const Tensor x = Generator(3).randn({2, 3, 4, 4});
  Tensor out = Tensor::zeros({4, 3, 4, 4});
  duplicate_batch(x, out);
  EXPECT_TRUE(same_values(out.view().slice0(0, 2), x));
  EXPECT_TRUE(same_values(out.view().slice0(2, 4), x));
}

// A noise model that depends on its input (so input scaling matters): eps = 0.1 * input, for the latent
// channels of the batch.
void fake_eps(const TensorView& input, const TensorView& noise_pred) {
  const int64_t per_image_in = input.numel() / input.dim(0), per_image_out = noise_pred.numel() / noise_pred.dim(0);
  for (int64_t b = 0; b < noise_pred.dim(0); ++b)
    for (int64_t i = 0; i < per_image_out; ++i)
      noise_pred.f32()[b * per_image_out + i] = 0.1f * input.f32()[b * per_image_in + i];
}

TEST(Denoise, StartsAtFirstStepAndMatchesTheSchedulersOwnLoop) {
  const int steps = 10, first = 4;
  const Tensor start = Generator(5).randn({1, 4, 3, 3});

  // The loop by hand, as the scheduler's contract spells it, from step `first`.
  auto reference = euler(steps);
  Generator unused(0);
  Tensor expected = start.clone();
  for (int i = first; i < steps; ++i) {
    Tensor input = expected.clone();
    reference->scale_model_input(input, size_t(i));
    Tensor eps = Tensor::empty(expected.shape());
    fake_eps(input, eps);
    expected = reference->step(eps, size_t(i), expected, unused);
  }

  auto scheduler = euler(steps);
  GeneratorSet generators({0}, {}, 1, 0);
  std::vector<float> seen_t;
  std::vector<int> callback_steps;
  std::vector<std::pair<int, int>> progress;
  DenoiseOptions options;
  options.first_step = first;
  options.callback_on_step_end = [&](const StepInfo& info) {
    callback_steps.push_back(info.step);
    EXPECT_EQ(info.num_steps, steps);
    return true;
  };
  options.progress = [&](const Progress& p) { progress.emplace_back(p.done, p.total); };
  const NoiseModel model = [&](const TensorView& input, const TensorView& t, const TensorView& noise_pred) {
    seen_t.push_back(t.f32()[0]);
    fake_eps(input, noise_pred);
  };
  const Tensor got = denoise(cpu_backend(), *scheduler, generators, start.clone(), model, options);

  ASSERT_EQ(seen_t.size(), size_t(steps - first));
  for (int i = first; i < steps; ++i) EXPECT_EQ(seen_t[size_t(i - first)], float(scheduler->timesteps()[size_t(i)]));
  EXPECT_EQ(callback_steps, (std::vector<int>{4, 5, 6, 7, 8, 9}));
  EXPECT_EQ(progress.front(), std::make_pair(0, steps - first));
  EXPECT_EQ(progress.back(), std::make_pair(steps - first, steps - first));
  EXPECT_TRUE(same_values(got, expected));
}

TEST(Denoise, ClassifierFreeGuidanceDoublesTheDefaultInput) {
  auto scheduler = euler(3);
  GeneratorSet generators({0}, {}, 2, 0);
  const Tensor start = Generator(9).randn({2, 4, 2, 2});
  DenoiseOptions options;
  options.classifier_free_guidance = true;
  options.guidance_scale = 7.5;
  int calls = 0;
  const NoiseModel model = [&](const TensorView& input, const TensorView&, const TensorView& noise_pred) {
    EXPECT_EQ(input.shape, Shape({4, 4, 2, 2}));
    EXPECT_EQ(noise_pred.shape, Shape({4, 4, 2, 2}));
    if (calls++ == 0) {  // both halves are the scaled latents
      EXPECT_TRUE(same_values(input.slice0(0, 2), input.slice0(2, 4)));
    }
    fake_eps(input, noise_pred);
  };
  const Tensor got = denoise(cpu_backend(), *scheduler, generators, start.clone(), model, options);
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(got.shape(), start.shape());
}

TEST(Denoise, ACustomModelInputMayHaveMoreChannelsThanTheLatents) {
  auto scheduler = euler(2);
  GeneratorSet generators({0}, {}, 1, 0);
  DenoiseOptions options;
  options.model_input_channels = 9;  // an inpainting UNet: latents + mask + masked-image latents
  std::vector<size_t> made;
  const MakeModelInput make_input = [&](const Tensor& latents, size_t step, const TensorView& input) {
    EXPECT_EQ(input.shape, Shape({1, 9, 2, 2}));
    std::memset(input.data, 0, input.nbytes());
    std::memcpy(input.data, latents.data(), latents.nbytes());
    made.push_back(step);
  };
  const NoiseModel model = [&](const TensorView& input, const TensorView&, const TensorView& noise_pred) {
    EXPECT_EQ(input.dim(1), 9);
    EXPECT_EQ(noise_pred.dim(1), 4);
    fake_eps(input, noise_pred);
  };
  denoise(cpu_backend(), *scheduler, generators, Generator(2).randn({1, 4, 2, 2}), model, options, make_input);
  EXPECT_EQ(made, (std::vector<size_t>{0, 1}));
}

TEST(Denoise, TheDefaultInputMustMatchTheModelsInputChannels) {
  auto scheduler = euler(2);
  GeneratorSet generators({0}, {}, 1, 0);
  DenoiseOptions options;
  options.model_input_channels = 9;
  const NoiseModel model = [](const TensorView&, const TensorView&, const TensorView&) { FAIL() << "ran"; };
  try {
    denoise(cpu_backend(), *scheduler, generators, Generator(2).randn({1, 4, 2, 2}), model, options);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("the UNet takes 9 input channels but the latents have 4"), std::string::npos)
        << e.what();
  }
}

TEST(Denoise, AFirstStepBeyondTheScheduleIsAnError) {
  auto scheduler = euler(3);
  GeneratorSet generators({0}, {}, 1, 0);
  DenoiseOptions options;
  options.first_step = 4;
  const NoiseModel model = [](const TensorView&, const TensorView&, const TensorView&) {};
  EXPECT_THROW(denoise(cpu_backend(), *scheduler, generators, Generator(2).randn({1, 4, 2, 2}), model, options),
               Error);
}

// The memory planner asks the backend; the CPU backend's rule follows its attention kernel's choice.
TEST(AttentionScratch, CpuBackendCountsScoreMatricesOnlyWhereItHoldsThem) {
  const Backend& cpu = cpu_backend();
  const int64_t matrix = 256 * 77 * int64_t(sizeof(float));
  AttentionParams params;
  params.strategy = AttentionStrategy::Auto;
  EXPECT_EQ(cpu.attention_scratch_bytes(params, 256, 77), matrix * num_threads());
  EXPECT_EQ(cpu.attention_scratch_bytes(params, 4096, 4096), 0);  // flash tiles beyond 512 keys
  params.strategy = AttentionStrategy::Full;
  EXPECT_EQ(cpu.attention_scratch_bytes(params, 4096, 4096), int64_t(4096) * 4096 * 4 * num_threads());
  params.strategy = AttentionStrategy::Sliced;
  params.slice_size = 3;
  EXPECT_EQ(cpu.attention_scratch_bytes(params, 256, 77), matrix * 3);
  params.strategy = AttentionStrategy::Flash;
  EXPECT_EQ(cpu.attention_scratch_bytes(params, 256, 77), 0);
  EXPECT_EQ(NullBackend().attention_scratch_bytes(params, 256, 77), 0);
  // bf16 attention on bf16gemm keeps the probabilities as bf16 beside the f32 scores.
  params.strategy = AttentionStrategy::Full;
  params.precision = DType::BF16;
  const cpu::Bf16Gemm saved = cpu::bf16_gemm_setting();
  cpu::bf16_gemm_setting() = cpu::Bf16Gemm::Native;
  EXPECT_EQ(cpu.attention_scratch_bytes(params, 256, 77), int64_t(256) * 77 * 6 * num_threads());
  cpu::bf16_gemm_setting() = cpu::Bf16Gemm::Widened;
  EXPECT_EQ(cpu.attention_scratch_bytes(params, 256, 77), matrix * num_threads());
  cpu::bf16_gemm_setting() = saved;
}

}  // namespace
}  // namespace kakusan
