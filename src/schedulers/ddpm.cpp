// DDPMScheduler: ancestral sampling of denoising diffusion probabilistic models (Ho et al. 2020).

#include <algorithm>
#include <cmath>

#include "schedulers/sample_ops.h"
#include "schedulers/schedule_math.h"
#include "schedulers/scheduler_classes.h"

namespace kakusan {
namespace {

class DDPM final : public Scheduler {
 public:
  explicit DDPM(SchedulerConfig c) : Scheduler(std::move(c)) {
    train_ = sched::make_train_schedule(config_, {"linear", "scaled_linear", "squaredcos_cap_v2", "sigmoid"});
    check_choice(class_name(), "prediction_type", config_.prediction_type, {"epsilon", "v_prediction", "sample"});
    check_choice(class_name(), "timestep_spacing", config_.timestep_spacing, {"linspace", "leading", "trailing"});
    // "learned" / "learned_range" need a UNet that predicts its variance (twice the channels); the
    // "*_log" forms other than fixed_small_log give NaN in diffusers itself.
    check_choice(class_name(), "variance_type", config_.variance_type, {"fixed_small", "fixed_small_log", "fixed_large"});
  }

  void set_timesteps(int n) override {
    timesteps_ = sched::alpha_indexed_timesteps(config_, n, class_name());
    num_inference_steps_ = n;
    reset_step_order();
  }

  Tensor add_noise(const TensorView& original, const TensorView& noise, double timestep) const override {
    return sched::add_noise_vp(original, noise, train_.alphas_cumprod, timestep, class_name());
  }

 protected:
  Tensor step_impl(const TensorView& model_output, size_t i, const TensorView& sample, NoiseSource& noise) override {
    const int64_t n = sched::check_step_inputs(model_output, sample, class_name());
    const int64_t t = int64_t(timesteps_[i]);
    const int64_t prev_t = t - config_.num_train_timesteps / num_inference_steps_;
    const float alpha_t = train_.alphas_cumprod.at(size_t(t));
    const float alpha_prev = prev_t >= 0 ? train_.alphas_cumprod.at(size_t(prev_t)) : 1.0f;
    const float beta_t = 1.0f - alpha_t, beta_prev = 1.0f - alpha_prev;
    const float current_alpha = alpha_t / alpha_prev, current_beta = 1.0f - current_alpha;

    Tensor x0 = sched::x0_from_alpha_sigma(model_output, sample, config_, std::sqrt(alpha_t), std::sqrt(beta_t));
    sched::threshold_or_clip_sample(x0, config_);

    const float x0_coeff = (std::sqrt(alpha_prev) * current_beta) / beta_t;
    const float sample_coeff = std::sqrt(current_alpha) * beta_prev / beta_t;
    const float* p = x0.f32();
    const float* x = sample.f32();
    Tensor prev = Tensor::empty(sample.shape);
    float* out = prev.f32();
    for (int64_t k = 0; k < n; ++k) out[k] = x0_coeff * p[k] + sample_coeff * x[k];
    if (t > 0) {
      const Tensor z = noise.randn(model_output.shape);
      const float variance = std::max((1.0f - alpha_prev) / (1.0f - alpha_t) * current_beta, 1e-20f);
      float scale = std::sqrt(variance);                                                   // fixed_small
      if (config_.variance_type == "fixed_small_log") scale = std::exp(0.5f * std::log(variance));
      if (config_.variance_type == "fixed_large") scale = std::sqrt(current_beta);
      for (int64_t k = 0; k < n; ++k) out[k] = out[k] + scale * z.f32()[k];
    }
    return prev;
  }

 private:
  sched::TrainSchedule train_;
  int num_inference_steps_ = 0;
};

}  // namespace

std::vector<ConfigKey> ddpm_config_keys() {
  return {key_num_train_timesteps(),
          key_beta_start(),
          key_beta_end(),
          key_beta_schedule(),
          key_trained_betas(),
          {"variance_type", ConfigType::String, "fixed_small"},
          {"clip_sample", ConfigType::Bool, true},
          {"prediction_type", ConfigType::String, "epsilon"},
          {"thresholding", ConfigType::Bool, false},
          {"dynamic_thresholding_ratio", ConfigType::Float, 0.995},
          {"clip_sample_range", ConfigType::Float, 1.0},
          {"sample_max_value", ConfigType::Float, 1.0},
          {"timestep_spacing", ConfigType::String, "leading"},
          {"steps_offset", ConfigType::Int, 0},
          {"rescale_betas_zero_snr", ConfigType::Bool, false}};
}

std::unique_ptr<Scheduler> make_ddpm(SchedulerConfig config) { return std::make_unique<DDPM>(std::move(config)); }

}  // namespace kakusan
