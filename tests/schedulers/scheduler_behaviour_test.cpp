// Behaviour that the golden kit does not pin down: from_config details, aliases, option parsing and its
// errors, step bookkeeping, generator use and add_noise.
#include <gtest/gtest.h>

#include <cmath>

#include "io/json_config.h"
#include "schedulers/schedule_math.h"
#include "schedulers/scheduler.h"
#include "support/golden.h"

namespace kakusan {
namespace {

// The SD1.5 scheduler_config.json (written by diffusers 0.6.0).
JsonConfig sd15() {
  return JsonConfig::parse(R"({"_class_name": "PNDMScheduler", "_diffusers_version": "0.6.0", "beta_end": 0.012,
    "beta_schedule": "scaled_linear", "beta_start": 0.00085, "num_train_timesteps": 1000, "set_alpha_to_one": false,
    "skip_prk_steps": true, "steps_offset": 1, "trained_betas": null, "clip_sample": false})",
                           "sd15");
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

Tensor ramp(Shape shape, float scale) {
  Tensor t = Tensor::empty(shape);
  for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = scale * float(i % 17) - 0.3f;
  return t;
}

TEST(SchedulerConfig, FromConfigCarriesOwnKeysAndKeepsTheRest) {
  const auto s = make_scheduler("EulerDiscreteScheduler", sd15());
  EXPECT_EQ(s->config().beta_schedule, "scaled_linear");
  EXPECT_EQ(s->config().steps_offset, 1);
  EXPECT_EQ(s->config().timestep_spacing, "linspace");  // Euler's own default: the source has no such key
  EXPECT_EQ(s->config().json["skip_prk_steps"], true);  // kept for compatible classes, as diffusers does
  EXPECT_FALSE(s->config().json.contains("_class_name"));
  const auto ddpm = make_scheduler("DDPMScheduler", sd15());
  EXPECT_FALSE(ddpm->config().clip_sample);  // carried over (DDPM's default is true)
}

TEST(SchedulerConfig, UseDefaultValuesAreDropped) {
  // A config saved by a class whose timestep_spacing was only its default must not impose it.
  const JsonConfig saved = JsonConfig::parse(
      R"({"_class_name": "EulerDiscreteScheduler", "timestep_spacing": "linspace", "steps_offset": 1,
          "_use_default_values": ["timestep_spacing"]})",
      "saved");
  EXPECT_EQ(make_scheduler("DDIMScheduler", saved)->config().timestep_spacing, "leading");
  const JsonConfig explicit_spacing =
      JsonConfig::parse(R"({"_class_name": "EulerDiscreteScheduler", "timestep_spacing": "linspace"})", "saved");
  EXPECT_EQ(make_scheduler("DDIMScheduler", explicit_spacing)->config().timestep_spacing, "linspace");
}

TEST(SchedulerConfig, OptionsAreTypedByTheKey) {
  const auto s = make_scheduler("UniPCMultistepScheduler", sd15(),
                                {{"steps_offset", "2"}, {"disable_corrector", "0,3"}, {"lower_order_final", "False"}});
  EXPECT_EQ(s->config().steps_offset, 2);
  EXPECT_EQ(s->config().disable_corrector, (std::vector<int>{0, 3}));
  EXPECT_FALSE(s->config().lower_order_final);
  const auto e = make_scheduler("euler", sd15(), {{"sigma_min", "none"}, {"beta_end", "0.02"}});
  EXPECT_FALSE(e->config().sigma_min.has_value());
  EXPECT_DOUBLE_EQ(e->config().beta_end, 0.02);
}

TEST(SchedulerConfig, BadOptionsAndValuesAreErrorsNamingThem) {
  EXPECT_NE(error_of([] { make_scheduler("euler", sd15(), {{"solver_order", "2"}}); }).find("\"solver_order\""),
            std::string::npos);
  EXPECT_NE(error_of([] { make_scheduler("ddim", sd15(), {{"steps_offset", "one"}}); }).find("steps_offset"),
            std::string::npos);
  EXPECT_NE(error_of([] { make_scheduler("dpm++2m", sd15(), {{"algorithm_type", "foo"}}); }).find("algorithm_type"),
            std::string::npos);
  EXPECT_NE(error_of([] { make_scheduler("euler", sd15(), {{"beta_schedule", "sigmoid"}}); }).find("beta_schedule"),
            std::string::npos);
  EXPECT_NE(error_of([] { make_scheduler("ddpm", sd15(), {{"variance_type", "learned"}}); }).find("variance_type"),
            std::string::npos);
  EXPECT_NE(error_of([] { make_scheduler("dpm++2m", sd15(), {{"algorithm_type", "dpmsolver"}}); })
                .find("final_sigmas_type"),
            std::string::npos);
  EXPECT_NE(error_of([] { make_scheduler("unipc", sd15(), {{"solver_p", "DDIM"}}); }).find("solver_p"),
            std::string::npos);
  EXPECT_NE(error_of([] { make_scheduler("euler", sd15(), {{"eta", "0.5"}}); }).find("\"eta\""), std::string::npos);
  EXPECT_NE(error_of([] { make_scheduler("euler_b", sd15()); }).find("unknown scheduler"), std::string::npos);
  EXPECT_NE(error_of([] { make_scheduler("ddim", sd15(), {{"steps_offset", "5000"}})->set_timesteps(5); })
                .find("steps_offset"),
            std::string::npos);
  EXPECT_NE(error_of([] { make_scheduler("euler", sd15(), {{"num_train_timesteps", "1"}}); })
                .find("num_train_timesteps"),
            std::string::npos);
  EXPECT_NE(error_of([] { make_scheduler("dpm++2m", sd15(), {{"lambda_min_clipped", "100"}})->set_timesteps(5); })
                .find("lambda_min_clipped"),
            std::string::npos);
  // A source config with a badly typed key names the file and the key.
  const JsonConfig bad = JsonConfig::parse(R"({"steps_offset": "1"})", "bad.json");
  const std::string message = error_of([&] { make_scheduler("ddim", bad); });
  EXPECT_NE(message.find("bad.json"), std::string::npos);
  EXPECT_NE(message.find("steps_offset"), std::string::npos);
}

TEST(SchedulerAliases, AreCaseInsensitiveAndCarryOptions) {
  for (const char* name : {"DPM++ 2M Karras", "dpm++2m_karras", "DPM++2M KARRAS"}) {
    const auto s = make_scheduler(name, sd15());
    EXPECT_EQ(s->class_name(), "DPMSolverMultistepScheduler") << name;
    EXPECT_TRUE(s->config().use_karras_sigmas) << name;
  }
  EXPECT_EQ(make_scheduler("EULER_A", sd15())->class_name(), "EulerAncestralDiscreteScheduler");
  EXPECT_EQ(make_scheduler("eulerdiscretescheduler", sd15())->class_name(), "EulerDiscreteScheduler");
  EXPECT_EQ(make_scheduler("DPM++ 2M SDE", sd15())->config().algorithm_type, "sde-dpmsolver++");
  EXPECT_TRUE(make_scheduler("plms", sd15())->config().skip_prk_steps);
  // The user's options win over the alias's.
  EXPECT_FALSE(make_scheduler("DPM++ 2M Karras", sd15(), {{"use_karras_sigmas", "false"}})->config().use_karras_sigmas);
  // Every alias names a class that exists.
  for (const SchedulerAlias& a : scheduler_aliases())
    EXPECT_EQ(make_scheduler(a.alias, sd15())->class_name(), a.class_name) << a.alias;
}

TEST(SchedulerSteps, MustComeInOrderAfterSetTimesteps) {
  auto s = make_scheduler("DPMSolverMultistepScheduler", sd15());
  Generator g(0);
  const Tensor x = ramp({1, 4, 2, 2}, 0.1f), eps = ramp({1, 4, 2, 2}, 0.05f);
  EXPECT_NE(error_of([&] { s->step(eps, 0, x, g); }).find("set_timesteps"), std::string::npos);
  s->set_timesteps(10);
  s->step(eps, 0, x, g);
  EXPECT_NE(error_of([&] { s->step(eps, 2, x, g); }).find("in order"), std::string::npos);
  EXPECT_NE(error_of([&] { s->step(eps, 10, x, g); }).find("past the last"), std::string::npos);
  const Tensor wrong = ramp({1, 4, 2, 3}, 0.1f);
  EXPECT_NE(error_of([&] { s->step(wrong, 1, x, g); }).find("shape"), std::string::npos);
  s->set_timesteps(10);  // starts over
  EXPECT_NO_THROW(s->step(eps, 0, x, g));
}

TEST(SchedulerSteps, TwoStageSchedulersRepeatTimesteps) {
  for (const char* name : {"heun", "dpm2", "dpm2_a"}) {
    auto s = make_scheduler(name, sd15());
    s->set_timesteps(10);
    EXPECT_EQ(s->timesteps().size(), 19u) << name;
    EXPECT_EQ(s->order(), 2) << name;
  }
  auto pndm = make_scheduler("pndm", sd15());
  pndm->set_timesteps(50);
  ASSERT_EQ(pndm->timesteps().size(), 51u);
  EXPECT_EQ(pndm->timesteps()[0], 981);
  EXPECT_EQ(pndm->timesteps()[1], 961);
  EXPECT_EQ(pndm->timesteps()[2], 961);
  EXPECT_EQ(pndm->timesteps().back(), 1);
}

TEST(SchedulerNoise, StochasticStepsDrawFromTheCallersGenerator) {
  const Tensor x = ramp({2, 4, 4, 4}, 0.1f), eps = ramp({2, 4, 4, 4}, 0.02f);
  // Euler draws (and discards) its churn noise every step, as diffusers does: the generator advances.
  auto euler = make_scheduler("euler", sd15());
  euler->set_timesteps(5);
  Generator used(7), reference(7);
  euler->step(eps, 0, x, used);
  reference.randn({2, 4, 4, 4});
  EXPECT_EQ(used.next_u32(), reference.next_u32());
  // Euler ancestral with one generator per sample draws (1, ...) from each; the same object repeated
  // draws consecutive blocks, which equals one whole-batch draw.
  auto a = make_scheduler("euler_a", sd15()), b = make_scheduler("euler_a", sd15());
  a->set_timesteps(5);
  b->set_timesteps(5);
  Generator shared(3), whole(3);
  std::vector<Generator*> repeated = {&shared, &shared};
  const Tensor from_list = a->step(eps, 0, x, std::span<Generator* const>(repeated));
  const Tensor from_one = b->step(eps, 0, x, whole);
  KK_EXPECT_CLOSE(from_list, from_one, testing::Tolerance{0, 0});
  // Different generators give different noise to each sample.
  Generator g0(1), g1(2);
  std::vector<Generator*> two = {&g0, &g1};
  NoiseSource noise{std::span<Generator* const>(two)};
  const Tensor z = noise.randn({2, 4, 4, 4});
  const Tensor z0 = Generator(1).randn({1, 4, 4, 4}), z1 = Generator(2).randn({1, 4, 4, 4});
  KK_EXPECT_CLOSE(z.view()[0], z0.view()[0], testing::Tolerance{0, 0});
  KK_EXPECT_CLOSE(z.view()[1], z1.view()[0], testing::Tolerance{0, 0});
}

TEST(SchedulerNoise, DdimEtaMakesStepsStochastic) {
  const Tensor x = ramp({1, 4, 4, 4}, 0.1f), eps = ramp({1, 4, 4, 4}, 0.02f);
  auto deterministic = make_scheduler("ddim", sd15());
  auto stochastic = make_scheduler("ddim", sd15(), {{"eta", "1.0"}});
  deterministic->set_timesteps(10);
  stochastic->set_timesteps(10);
  Generator g1(0), g2(0);
  const Tensor a = deterministic->step(eps, 0, x, g1);
  const Tensor b = stochastic->step(eps, 0, x, g2);
  EXPECT_FALSE(testing::tensors_close(a, b, testing::Tolerance{1e-3, 0}));
  EXPECT_EQ(g1.next_u32(), Generator(0).next_u32());  // eta 0 leaves the generator alone
}

TEST(SchedulerAddNoise, FollowsEachForwardProcess) {
  const Tensor x = ramp({1, 4, 2, 2}, 0.1f), n = ramp({1, 4, 2, 2}, -0.07f);
  auto ddim = make_scheduler("ddim", sd15());
  ddim->set_timesteps(10);
  SchedulerConfig c;
  c.class_name = "DDIMScheduler";
  c.beta_start = 0.00085;
  c.beta_end = 0.012;
  c.beta_schedule = "scaled_linear";
  const float a = sched::make_train_schedule(c, {"scaled_linear"}).alphas_cumprod[501];
  const Tensor noisy = ddim->add_noise(x, n, 501);
  EXPECT_FLOAT_EQ(noisy.f32()[5], std::sqrt(a) * x.f32()[5] + std::sqrt(1 - a) * n.f32()[5]);
  auto euler = make_scheduler("euler", sd15());
  euler->set_timesteps(10);
  const double t = euler->timesteps()[3];
  const float sigma = float((*euler->sigmas())[3]);
  EXPECT_FLOAT_EQ(euler->add_noise(x, n, t).f32()[5], x.f32()[5] + n.f32()[5] * sigma);
  EXPECT_NE(error_of([&] { euler->add_noise(x, n, 12.5); }).find("not one of"), std::string::npos);
}

TEST(ScheduleMath, NumpyRoundingAndSpacing) {
  EXPECT_EQ(sched::np_round(0.5), 0);
  EXPECT_EQ(sched::np_round(1.5), 2);
  EXPECT_EQ(sched::np_round(2.5), 2);
  EXPECT_EQ(sched::np_round(-0.5), 0);
  const std::vector<double> l = sched::np_linspace(0, 999, 4);
  EXPECT_EQ(l, (std::vector<double>{0, 333, 666, 999}));
  EXPECT_EQ(sched::np_arange(1000, 0, -250), (std::vector<double>{1000, 750, 500, 250}));
  const std::vector<float> fp = {1.0f, 3.0f, 7.0f};
  EXPECT_DOUBLE_EQ(sched::np_interp(0.5, fp), 2.0);
  EXPECT_DOUBLE_EQ(sched::np_interp(1.25, fp), 4.0);
  EXPECT_DOUBLE_EQ(sched::np_interp(5, fp), 7.0);
  // Karras: rho = 7 ramp from sigma_max to sigma_min, ends exact.
  const std::vector<double> k = sched::karras_sigmas(0.1, 10, 5);
  EXPECT_NEAR(k.front(), 10, 1e-12);
  EXPECT_NEAR(k.back(), 0.1, 1e-12);
}

TEST(SchedulerSpacing, TrailingAndLeadingFollowDiffusers) {
  auto ddim = make_scheduler("ddim", sd15(), {{"timestep_spacing", "trailing"}});
  ddim->set_timesteps(4);
  EXPECT_EQ(ddim->timesteps(), (std::vector<double>{999, 749, 499, 249}));
  auto leading = make_scheduler("ddim", sd15());
  leading->set_timesteps(4);
  EXPECT_EQ(leading->timesteps(), (std::vector<double>{751, 501, 251, 1}));
  EXPECT_NE(error_of([] { make_scheduler("ddim", sd15(), {{"timestep_spacing", "middle"}}); }).find("timestep_spacing"),
            std::string::npos);
}

}  // namespace
}  // namespace kakusan
