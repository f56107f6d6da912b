// LCMScheduler against diffusers (tests/golden/lcm, written by tests/golden/lcm/make_goldens.py): from_config
// of the SD1.5 scheduler config, timesteps for several N and original_inference_steps, and the dummy-model
// loop of the kit's C.6 (its per-step noise drawn from torch.manual_seed(0)) for each prediction type.
#include <gtest/gtest.h>

#include "io/json_config.h"
#include "io/safetensors.h"
#include "schedulers/scheduler.h"
#include "support/golden.h"

namespace kakusan {
namespace {

using testing::Tolerance;

SafetensorsFile lcm_goldens() {
  return SafetensorsFile::open(std::filesystem::path(KAKUSAN_SOURCE_DIR) / "tests/golden/lcm/lcm_scheduler.safetensors");
}

// The SD1.5 scheduler_config.json (runwayml), as the kit's tiny-sd holds it.
JsonConfig sd15() {
  return JsonConfig(nlohmann::json::parse(R"({"_class_name": "PNDMScheduler", "_diffusers_version": "0.6.0",
      "beta_end": 0.012, "beta_schedule": "scaled_linear", "beta_start": 0.00085, "clip_sample": false,
      "num_train_timesteps": 1000, "set_alpha_to_one": false, "skip_prk_steps": true, "steps_offset": 1,
      "trained_betas": null})"),
                    "sd15 scheduler_config.json");
}

std::unique_ptr<Scheduler> lcm(const std::map<std::string, std::string>& options = {}) {
  return make_scheduler("LCMScheduler", sd15(), options);
}

Tensor timesteps_i64(const Scheduler& s) {
  Tensor t = Tensor::empty({int64_t(s.timesteps().size())}, DType::I64);
  for (size_t i = 0; i < s.timesteps().size(); ++i) t.i64()[i] = int64_t(s.timesteps()[i]);
  return t;
}

// diffusers' dummy_sample_deter and the dummy model x * t / (t + 1), as the kit's scheduler cases.
Tensor dummy_sample() {
  Tensor x = Tensor::empty({4, 3, 8, 8});
  for (int64_t b = 0; b < 4; ++b)
    for (int64_t i = 0; i < 3 * 8 * 8; ++i) x.f32()[b * 192 + i] = float(i * 4 + b) / 768.0f;
  return x;
}

Tensor run_loop(Scheduler& s, int n, Tensor* trace = nullptr) {
  s.set_timesteps(n);
  Generator generator(0);
  Tensor x = dummy_sample();
  for (size_t i = 0; i < s.timesteps().size(); ++i) {
    const float t = float(s.timesteps()[i]);
    Tensor out = x.clone();
    s.scale_model_input(out, i);
    for (int64_t k = 0; k < out.numel(); ++k) out.f32()[k] = out.f32()[k] * t / (t + 1.0f);
    x = s.step(out, i, x, generator);
    if (trace) std::copy(x.f32(), x.f32() + 192, trace->f32() + int64_t(i) * 192);
  }
  return x;
}

constexpr Tolerance kLoop{1e-5, 1e-5};  // the kit's scheduler-loop tolerance

TEST(LcmScheduler, EffectiveConfigFromSd15) {
  const auto s = lcm();
  EXPECT_EQ(s->class_name(), "LCMScheduler");
  EXPECT_EQ(s->config().json["original_inference_steps"], 50);
  EXPECT_EQ(s->config().json["timestep_scaling"], 10.0);
  EXPECT_EQ(s->config().json["steps_offset"], 1);          // carried over, unused by LCM
  EXPECT_EQ(s->config().json["set_alpha_to_one"], false);  // carried over: the final alpha is alphas_cumprod[0]
  EXPECT_EQ(s->init_noise_sigma(), 1.0);
  EXPECT_EQ(make_scheduler("lcm", sd15())->class_name(), "LCMScheduler");
}

TEST(LcmScheduler, TimestepsMatchDiffusers) {
  const SafetensorsFile file = lcm_goldens();
  for (int n : {1, 2, 3, 4, 8, 50}) {
    auto s = lcm();
    s->set_timesteps(n);
    EXPECT_TRUE(s->integer_timesteps());
    KK_EXPECT_CLOSE(timesteps_i64(*s), file.view("timesteps_N" + std::to_string(n)), Tolerance{}, "N=" + std::to_string(n));
  }
  for (auto [orig, n] : {std::pair{100, 4}, {100, 8}, {20, 4}, {4, 4}}) {
    auto s = lcm({{"original_inference_steps", std::to_string(orig)}});
    s->set_timesteps(n);
    const std::string name = "timesteps_orig" + std::to_string(orig) + "_N" + std::to_string(n);
    KK_EXPECT_CLOSE(timesteps_i64(*s), file.view(name), Tolerance{}, name);
  }
}

TEST(LcmScheduler, DummyLoopsMatchDiffusers) {
  const SafetensorsFile file = lcm_goldens();
  {
    auto s = lcm();
    Tensor trace = Tensor::empty({4, 3, 8, 8});
    KK_EXPECT_CLOSE(run_loop(*s, 4, &trace), file.view("loop_eps_N4"), kLoop, "epsilon N=4");
    KK_EXPECT_CLOSE(trace, file.view("trace_eps_N4"), kLoop, "epsilon N=4 trace");
  }
  KK_EXPECT_CLOSE(run_loop(*lcm(), 1, nullptr), file.view("loop_eps_N1"), kLoop, "one step");
  KK_EXPECT_CLOSE(run_loop(*lcm({{"prediction_type", "v_prediction"}}), 4), file.view("loop_v_N4"), kLoop, "v N=4");
  KK_EXPECT_CLOSE(run_loop(*lcm({{"prediction_type", "sample"}, {"clip_sample", "true"}}), 8),
                  file.view("loop_sample_clip_N8"), kLoop, "sample + clip N=8");
  KK_EXPECT_CLOSE(run_loop(*lcm({{"set_alpha_to_one", "true"}, {"timestep_scaling", "5.0"}}), 4),
                  file.view("loop_alpha1_scaling5_N4"), kLoop, "set_alpha_to_one, timestep_scaling 5");
}

TEST(LcmScheduler, NoNoiseOnTheLastStep) {
  // The last step returns the consistency estimate: the generator is untouched, so two generators give the
  // same one-step result.
  auto s = lcm();
  s->set_timesteps(1);
  const Tensor x = dummy_sample();
  Generator a(1), b(2);
  const Tensor ya = s->step(x, 0, x, a);
  s->set_timesteps(1);
  const Tensor yb = s->step(x, 0, x, b);
  KK_EXPECT_CLOSE(ya, yb, Tolerance{});
}

TEST(LcmScheduler, BadStepCountsAndConfigsAreErrors) {
  EXPECT_THROW(lcm()->set_timesteps(51), Error);  // more than original_inference_steps
  EXPECT_THROW(lcm()->set_timesteps(0), Error);
  EXPECT_THROW(lcm({{"original_inference_steps", "1001"}}), Error);
  EXPECT_THROW(lcm({{"original_inference_steps", "0"}}), Error);
  EXPECT_THROW(lcm({{"prediction_type", "flow"}}), Error);
  EXPECT_THROW(lcm({{"original_inference_steps", "ten"}}), Error);
}

}  // namespace
}  // namespace kakusan
