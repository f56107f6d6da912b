// KDPM2DiscreteScheduler: k-diffusion's sample_dpm_2 (DPM-Solver-2 on the Karras ODE). Each step evaluates
// the model at sigma, then at the geometric midpoint of sigma and the next sigma, so timesteps alternate
// between the schedule and the midpoints' (fractional) timesteps.

#include <cmath>

#include "schedulers/sample_ops.h"
#include "schedulers/scheduler_classes.h"
#include "schedulers/sigma_scheduler.h"

namespace kakusan {
namespace {

class KDPM2Discrete final : public SigmaScheduler {
 public:
  explicit KDPM2Discrete(SchedulerConfig c)
      : SigmaScheduler(std::move(c), {"linear", "scaled_linear", "squaredcos_cap_v2"}) {
    check_choice(class_name(), "prediction_type", config_.prediction_type, {"epsilon", "v_prediction"});
    check_choice(class_name(), "timestep_spacing", config_.timestep_spacing, {"linspace", "leading", "trailing"});
  }

  int order() const override { return 2; }

  void set_timesteps(int n) override {
    const TwoStageSchedule s = two_stage_schedule(n);
    const std::vector<float>& sig = s.sigmas;
    // The midpoint between each sigma and the previous one (entry 0 pairs with the final 0: NaN, unused).
    std::vector<float> mid(sig.size());
    for (size_t k = 0; k < sig.size(); ++k) mid[k] = geometric_midpoint(sig[k], sig[(k + sig.size() - 1) % sig.size()]);
    sigmas_ = repeat_for_two_stages(sig);
    sigmas_interpol_ = repeat_for_two_stages(mid);
    // The midpoint's timestep comes before each schedule timestep: mid[k] before timestep k.
    timesteps_ = two_stage_timesteps(s.timesteps, std::vector<float>(mid.begin() + 1, mid.end()));
    stored_sample_.reset();
    reset_step_order();
  }

 protected:
  float input_sigma(size_t i) const override { return stored_sample_ ? sigmas_interpol_[i] : sigmas_[i]; }

  Tensor step_impl(const TensorView& model_output, size_t i, const TensorView& sample, NoiseSource&) override {
    const int64_t n = sched::check_step_inputs(model_output, sample, class_name());
    const bool first_order = !stored_sample_.has_value();
    const float sigma = first_order ? sigmas_[i] : sigmas_[i - 1];
    const float sigma_interpol = first_order ? sigmas_interpol_[i + 1] : sigmas_interpol_[i];
    const float sigma_next = first_order ? sigmas_[i + 1] : sigmas_[i];
    const float sigma_hat = sigma * (0.0f + 1.0f);
    const Tensor x0 = sched::x0_from_sigma(model_output, sample, config_, first_order ? sigma_hat : sigma_interpol,
                                           /*allow_sample=*/false);
    const float* x = sample.f32();
    const float* p = x0.f32();
    Tensor prev = Tensor::empty(sample.shape);
    float* out = prev.f32();
    if (first_order) {
      const float dt = sigma_interpol - sigma_hat;
      for (int64_t k = 0; k < n; ++k) out[k] = x[k] + (x[k] - p[k]) / sigma_hat * dt;
      stored_sample_ = Tensor::copy_of(sample);
    } else {
      const float dt = sigma_next - sigma_hat;
      const float* x_start = stored_sample_->f32();
      for (int64_t k = 0; k < n; ++k) out[k] = x_start[k] + (x[k] - p[k]) / sigma_interpol * dt;
      stored_sample_.reset();
    }
    return prev;
  }

 private:
  std::vector<float> sigmas_interpol_;
  std::optional<Tensor> stored_sample_;  // the sample at the start of a step, kept for its second half
};

}  // namespace

std::vector<ConfigKey> kdpm2_config_keys() {
  return {key_num_train_timesteps(),
          key_beta_start(0.00085),
          key_beta_end(0.012),
          key_beta_schedule(),
          key_trained_betas(),
          {"use_karras_sigmas", ConfigType::Bool, false},
          {"prediction_type", ConfigType::String, "epsilon"},
          {"timestep_spacing", ConfigType::String, "linspace"},
          {"steps_offset", ConfigType::Int, 0}};
}

std::unique_ptr<Scheduler> make_kdpm2(SchedulerConfig config) {
  return std::make_unique<KDPM2Discrete>(std::move(config));
}

}  // namespace kakusan
