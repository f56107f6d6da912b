// EulerDiscreteScheduler: Algorithm 2 (Euler) of Karras et al. 2022, the k-diffusion "Euler" sampler.

#include <cmath>

#include "schedulers/sample_ops.h"
#include "schedulers/scheduler_classes.h"
#include "schedulers/sigma_scheduler.h"

namespace kakusan {
namespace {

class EulerDiscrete final : public SigmaScheduler {
 public:
  explicit EulerDiscrete(SchedulerConfig c)
      : SigmaScheduler(std::move(c), {"linear", "scaled_linear", "squaredcos_cap_v2"}) {
    check_choice(class_name(), "prediction_type", config_.prediction_type, {"epsilon", "v_prediction", "sample"});
    check_choice(class_name(), "interpolation_type", config_.interpolation_type, {"linear", "log_linear"});
    check_choice(class_name(), "timestep_type", config_.timestep_type, {"discrete", "continuous"});
    check_choice(class_name(), "final_sigmas_type", config_.final_sigmas_type, {"zero", "sigma_min"});
    check_choice(class_name(), "timestep_spacing", config_.timestep_spacing, {"linspace", "leading", "trailing"});
    if (config_.rescale_betas_zero_snr) pin_zero_terminal_snr();
  }

  void set_timesteps(int n) override {
    Schedule s = interpolated_schedule(n, /*config_limits=*/true);
    if (config_.interpolation_type == "log_linear" && !config_.use_karras_sigmas) {
      // torch.linspace(log(sigma_max), log(sigma_min), n + 1).exp(), as diffusers does (n + 1 sigmas).
      const std::vector<float> logs =
          sched::torch_linspace_f32(std::log(table_.sigma_max()), std::log(table_.sigma_min()), n + 1);
      s.sigmas.clear();
      for (float l : logs) s.sigmas.push_back(std::exp(l));
    }
    sigmas_ = to_f32(s.sigmas);
    sigmas_.push_back(config_.final_sigmas_type == "sigma_min" ? table_.sigma_min() : 0.0f);
    timesteps_.clear();
    if (config_.timestep_type == "continuous" && config_.prediction_type == "v_prediction") {
      for (size_t i = 0; i + 1 < sigmas_.size(); ++i) timesteps_.push_back(0.25f * std::log(sigmas_[i]));
    } else {
      for (double t : s.timesteps) timesteps_.push_back(sched::f32(t));
    }
    reset_step_order();
  }

 protected:
  Tensor step_impl(const TensorView& model_output, size_t i, const TensorView& sample, NoiseSource& noise) override {
    const int64_t n = sched::check_step_inputs(model_output, sample, class_name());
    const float sigma = sigmas_[i];
    const float sigma_hat = sigma * (0.0f + 1.0f);  // s_churn = 0: no noise is added back
    // diffusers draws the churn noise on every step even when it is unused; keep the generator in step.
    (void)noise.randn(model_output.shape);
    const Tensor x0 = sched::x0_from_sigma(model_output, sample, config_, sigma_hat);
    const float dt = sigmas_[i + 1] - sigma_hat;
    const float* x = sample.f32();
    const float* p = x0.f32();
    Tensor prev = Tensor::empty(sample.shape);
    float* out = prev.f32();
    for (int64_t k = 0; k < n; ++k) {
      const float derivative = (x[k] - p[k]) / sigma_hat;
      out[k] = x[k] + derivative * dt;
    }
    return prev;
  }
};

}  // namespace

std::vector<ConfigKey> euler_config_keys() {
  return {key_num_train_timesteps(),
          key_beta_start(),
          key_beta_end(),
          key_beta_schedule(),
          key_trained_betas(),
          {"prediction_type", ConfigType::String, "epsilon"},
          {"interpolation_type", ConfigType::String, "linear"},
          {"use_karras_sigmas", ConfigType::Bool, false},
          {"sigma_min", ConfigType::OptionalFloat, nullptr},
          {"sigma_max", ConfigType::OptionalFloat, nullptr},
          {"timestep_spacing", ConfigType::String, "linspace"},
          {"timestep_type", ConfigType::String, "discrete"},
          {"steps_offset", ConfigType::Int, 0},
          {"rescale_betas_zero_snr", ConfigType::Bool, false},
          {"final_sigmas_type", ConfigType::String, "zero"}};
}

std::unique_ptr<Scheduler> make_euler(SchedulerConfig config) {
  return std::make_unique<EulerDiscrete>(std::move(config));
}

}  // namespace kakusan
