// Every scheduler case of the golden kit (C.6): XScheduler.from_config(sd15_scheduler_config, **overrides)
// must give diffusers' effective config, timesteps, sigmas and init_noise_sigma for N in {1, 2, 10, 20, 25,
// 50}, and the dummy-model loop must reproduce diffusers' samples after every step.
#include <gtest/gtest.h>

#include <cmath>

#include "io/json_config.h"
#include "schedulers/schedule_math.h"
#include "schedulers/scheduler.h"
#include "support/golden.h"
#include "support/golden_manifest.h"

namespace kakusan {
namespace {

using testing::Tolerance;

// The overrides as `key=value` option strings, exactly as a user would type them.
std::map<std::string, std::string> options_of(const nlohmann::json& overrides) {
  std::map<std::string, std::string> options;
  for (auto it = overrides.begin(); it != overrides.end(); ++it)
    options[it.key()] = it.value().is_string() ? it.value().get<std::string>() : it.value().dump();
  return options;
}

JsonConfig sd15_config() {
  return JsonConfig((*testing::golden_manifest())["sd15_scheduler_config"], "manifest.json:sd15_scheduler_config");
}

std::unique_ptr<Scheduler> make_case_scheduler(const nlohmann::json& params) {
  return make_scheduler(params["class"].get<std::string>(), sd15_config(), options_of(params["overrides"]));
}

// diffusers' test fixture: arange(4*3*8*8).reshape(3, 8, 8, 4) / 768, permuted to (4, 3, 8, 8).
Tensor dummy_sample_deter() {
  Tensor x = Tensor::empty({4, 3, 8, 8});
  float* p = x.f32();
  for (int64_t b = 0; b < 4; ++b)
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t h = 0; h < 8; ++h)
        for (int64_t w = 0; w < 8; ++w) {
          const int64_t value = ((c * 8 + h) * 8 + w) * 4 + b;
          p[((b * 3 + c) * 8 + h) * 8 + w] = float(value) / 768.0f;
        }
  return x;
}

// The dummy model: sample * t / (t + 1) with t in float32.
Tensor dummy_model(const Tensor& x, double timestep) {
  const float t = float(timestep);
  Tensor out = Tensor::empty(x.shape());
  for (int64_t k = 0; k < x.numel(); ++k) out.f32()[k] = x.f32()[k] * t / (t + 1.0f);
  return out;
}

// Our values in the dtype of the golden tensor, for tensors_close.
Tensor as_golden_dtype(const std::vector<double>& values, DType dtype) {
  Tensor t = Tensor::empty({int64_t(values.size())}, dtype);
  for (size_t i = 0; i < values.size(); ++i) {
    if (dtype == DType::I64) {
      EXPECT_EQ(values[i], std::floor(values[i])) << "integer timestep expected at " << i;
      t.i64()[i] = int64_t(values[i]);
    } else {
      t.f32()[i] = float(values[i]);
    }
  }
  return t;
}

bool json_equal(const nlohmann::json& got, const nlohmann::json& want) {
  if (want.is_string() && (want == "-Infinity" || want == "Infinity"))
    return got.is_number() && std::isinf(got.get<double>()) && (got.get<double>() < 0) == (want == "-Infinity");
  if (want.is_number() && got.is_number()) return got.get<double>() == want.get<double>();
  return got == want;
}

class GoldenScheduler : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam().empty()) GTEST_SKIP() << testing::golden_absent_reason();
  }
  const nlohmann::json& golden_case() const { return testing::golden_case(GetParam()); }
  const nlohmann::json& params() const { return golden_case()["params"]; }
};

TEST_P(GoldenScheduler, EffectiveConfigAndOrder) {
  KK_REQUIRE_GOLDEN();
  const auto scheduler = make_case_scheduler(params());
  const nlohmann::json& want = params()["effective_config"];
  const nlohmann::json& got = scheduler->config().json;
  for (auto it = want.begin(); it != want.end(); ++it) {
    ASSERT_TRUE(got.contains(it.key())) << "missing config key " << it.key();
    EXPECT_TRUE(json_equal(got[it.key()], it.value()))
        << it.key() << ": got " << got[it.key()].dump() << ", expected " << it.value().dump();
  }
  for (auto it = got.begin(); it != got.end(); ++it) EXPECT_TRUE(want.contains(it.key())) << "extra key " << it.key();
  EXPECT_EQ(scheduler->order(), params()["order"].get<int>());
  EXPECT_EQ(scheduler->class_name(), params()["class"].get<std::string>());
}

TEST_P(GoldenScheduler, TimestepsSigmasAndInitNoiseSigma) {
  KK_REQUIRE_GOLDEN();
  const SafetensorsFile file = testing::open_golden(golden_case()["file"].get<std::string>());
  const Tolerance sigma_tol = testing::golden_tolerance(GetParam(), "sigmas");
  for (const auto& n_json : params()["Ns"]) {
    const int n = n_json.get<int>();
    SCOPED_TRACE("N=" + std::to_string(n));
    const auto scheduler = make_case_scheduler(params());
    scheduler->set_timesteps(n);
    const TensorView want_t = file.view("timesteps_N" + std::to_string(n));
    // Integer timesteps are exact; float32 ones (Euler family) within rtol 1e-6 (the manifest says so in words).
    const Tolerance t_tol = want_t.dtype == DType::I64 ? Tolerance{0, 0} : Tolerance{0, 1e-6};
    EXPECT_EQ(scheduler->integer_timesteps(), want_t.dtype == DType::I64);
    KK_EXPECT_CLOSE(as_golden_dtype(scheduler->timesteps(), want_t.dtype), want_t, t_tol, "timesteps");
    const std::string sigmas_name = "sigmas_N" + std::to_string(n);
    if (file.contains(sigmas_name)) {
      ASSERT_TRUE(scheduler->sigmas().has_value());
      KK_EXPECT_CLOSE(as_golden_dtype(*scheduler->sigmas(), DType::F32), file.view(sigmas_name), sigma_tol, "sigmas");
    }
    const double want_init = params()["init_noise_sigma"][std::to_string(n)].get<double>();
    EXPECT_NEAR(scheduler->init_noise_sigma(), want_init, 1e-6 * std::fabs(want_init)) << "init_noise_sigma";
  }
}

TEST_P(GoldenScheduler, DummyModelLoopAndTrace) {
  KK_REQUIRE_GOLDEN();
  const SafetensorsFile file = testing::open_golden(golden_case()["file"].get<std::string>());
  const Tolerance loop_tol = testing::golden_tolerance(GetParam(), "final_sample");
  for (const auto& n_json : params()["loop_Ns"]) {
    const int n = n_json.get<int>();
    SCOPED_TRACE("N=" + std::to_string(n));
    const auto scheduler = make_case_scheduler(params());
    scheduler->set_timesteps(n);
    // Stochastic steps draw from torch.manual_seed(0), seeded once before the loop.
    Generator generator(0);
    Tensor x = dummy_sample_deter();
    const float init_sigma = float(scheduler->init_noise_sigma());
    for (int64_t k = 0; k < x.numel(); ++k) x.f32()[k] = x.f32()[k] * init_sigma;
    const size_t steps = scheduler->timesteps().size();
    ASSERT_EQ(int64_t(steps), params()["loops"][std::to_string(n)]["num_model_evals"].get<int64_t>());
    const int64_t per_sample = x.numel() / 4;
    Tensor trace = Tensor::empty({int64_t(steps), 3, 8, 8});
    for (size_t i = 0; i < steps; ++i) {
      Tensor model_input = x.clone();
      scheduler->scale_model_input(model_input, i);
      const Tensor out = dummy_model(model_input, scheduler->timesteps()[i]);
      x = scheduler->step(out, i, x, generator);
      std::copy(x.f32(), x.f32() + per_sample, trace.f32() + int64_t(i) * per_sample);
      if (n == 20) {
        const TensorView want_step = file.view("trace_N20_sample0")[int64_t(i)];
        ASSERT_TRUE(testing::tensors_close(trace.view()[int64_t(i)], want_step, loop_tol,
                                           "trace step " + std::to_string(i)));
      }
    }
    KK_EXPECT_CLOSE(x, file.view("final_sample_N" + std::to_string(n)), loop_tol, "final sample");
  }
}

// The kit's scheduler cases ("sched_<Class>[_variant]" with a "class" parameter). Without the kit, one
// placeholder that reports SKIPPED; a kit with none leaves the suite uninstantiated, which GoogleTest fails.
std::vector<std::string> case_ids() {
  if (!testing::golden_dir()) return {""};
  std::vector<std::string> ids;
  for (const std::string& id : testing::golden_case_ids("sched_"))
    if (testing::golden_case(id)["params"].contains("class")) ids.push_back(id);
  return ids;
}

INSTANTIATE_TEST_SUITE_P(Cases, GoldenScheduler, ::testing::ValuesIn(case_ids()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param.empty() ? std::string("NoGoldenKit") : info.param;
                         });

TEST(GoldenTrainSchedule, BetasAlphasAndCumprodMatchTorch) {
  KK_REQUIRE_GOLDEN();
  const SafetensorsFile file = testing::open_golden("schedulers/train_schedule.safetensors");
  SchedulerConfig config;
  config.class_name = "PNDMScheduler";
  config.beta_start = 0.00085;
  config.beta_end = 0.012;
  config.beta_schedule = "scaled_linear";
  const sched::TrainSchedule s = sched::make_train_schedule(config, {"scaled_linear"});
  auto as_tensor = [](const std::vector<float>& v) {
    Tensor t = Tensor::empty({int64_t(v.size())});
    std::copy(v.begin(), v.end(), t.f32());
    return t;
  };
  // Reproduced bit for bit (torch.linspace's two-ended evaluation, cumprod accumulated in double): tighter than
  // the kit's suggested rtol 1e-6 on purpose, so that any change to this arithmetic is noticed.
  KK_EXPECT_CLOSE(as_tensor(s.betas), file.view("betas"), Tolerance{0, 0}, "betas");
  KK_EXPECT_CLOSE(as_tensor(s.alphas), file.view("alphas"), Tolerance{0, 0}, "alphas");
  KK_EXPECT_CLOSE(as_tensor(s.alphas_cumprod), file.view("alphas_cumprod"), Tolerance{0, 0}, "alphas_cumprod");
}

}  // namespace
}  // namespace kakusan
