// EulerAncestralDiscreteScheduler: Euler steps to sigma_down, then fresh noise of sigma_up (k-diffusion's
// sample_euler_ancestral, eta = 1).

#include <cmath>

#include "schedulers/sample_ops.h"
#include "schedulers/scheduler_classes.h"
#include "schedulers/sigma_scheduler.h"

namespace kakusan {
namespace {

class EulerAncestralDiscrete final : public SigmaScheduler {
 public:
  explicit EulerAncestralDiscrete(SchedulerConfig c)
      : SigmaScheduler(std::move(c), {"linear", "scaled_linear", "squaredcos_cap_v2"}) {
    check_choice(class_name(), "prediction_type", config_.prediction_type, {"epsilon", "v_prediction"});
    check_choice(class_name(), "timestep_spacing", config_.timestep_spacing, {"linspace", "leading", "trailing"});
    if (config_.rescale_betas_zero_snr) pin_zero_terminal_snr();
  }

  void set_timesteps(int n) override {
    const Schedule s = interpolated_schedule(n, /*config_limits=*/false);  // this class has no Karras option
    sigmas_ = to_f32(s.sigmas);
    sigmas_.push_back(0.0f);
    timesteps_.clear();
    for (double t : s.timesteps) timesteps_.push_back(sched::f32(t));
    reset_step_order();
  }

 protected:
  Tensor step_impl(const TensorView& model_output, size_t i, const TensorView& sample, NoiseSource& noise) override {
    const int64_t n = sched::check_step_inputs(model_output, sample, class_name());
    const float sigma = sigmas_[i];
    const Tensor x0 = sched::x0_from_sigma(model_output, sample, config_, sigma, /*allow_sample=*/false);
    const float sigma_from = sigmas_[i], sigma_to = sigmas_[i + 1];
    const float sigma_up =
        std::sqrt(sigma_to * sigma_to * (sigma_from * sigma_from - sigma_to * sigma_to) / (sigma_from * sigma_from));
    const float sigma_down = std::sqrt(sigma_to * sigma_to - sigma_up * sigma_up);
    const float dt = sigma_down - sigma;
    const Tensor eps = noise.randn(model_output.shape);
    const float* x = sample.f32();
    const float* p = x0.f32();
    const float* e = eps.f32();
    Tensor prev = Tensor::empty(sample.shape);
    float* out = prev.f32();
    for (int64_t k = 0; k < n; ++k) {
      const float derivative = (x[k] - p[k]) / sigma;
      const float moved = x[k] + derivative * dt;
      out[k] = moved + e[k] * sigma_up;
    }
    return prev;
  }
};

}  // namespace

std::vector<ConfigKey> euler_ancestral_config_keys() {
  return {key_num_train_timesteps(),
          key_beta_start(),
          key_beta_end(),
          key_beta_schedule(),
          key_trained_betas(),
          {"prediction_type", ConfigType::String, "epsilon"},
          {"timestep_spacing", ConfigType::String, "linspace"},
          {"steps_offset", ConfigType::Int, 0},
          {"rescale_betas_zero_snr", ConfigType::Bool, false}};
}

std::unique_ptr<Scheduler> make_euler_ancestral(SchedulerConfig config) {
  return std::make_unique<EulerAncestralDiscrete>(std::move(config));
}

}  // namespace kakusan
