// DDIMScheduler: denoising diffusion implicit models (Song et al. 2020), deterministic for eta = 0.

#include <cmath>

#include "schedulers/sample_ops.h"
#include "schedulers/schedule_math.h"
#include "schedulers/scheduler_classes.h"

namespace kakusan {
namespace {

class DDIM final : public Scheduler {
 public:
  explicit DDIM(SchedulerConfig c) : Scheduler(std::move(c)) {
    train_ = sched::make_train_schedule(config_, {"linear", "scaled_linear", "squaredcos_cap_v2"});
    final_alpha_cumprod_ = config_.set_alpha_to_one ? 1.0f : train_.alphas_cumprod.front();
    check_choice(class_name(), "prediction_type", config_.prediction_type, {"epsilon", "v_prediction", "sample"});
    check_choice(class_name(), "timestep_spacing", config_.timestep_spacing, {"linspace", "leading", "trailing"});
  }

  void set_timesteps(int n) override {
    timesteps_ = sched::alpha_indexed_timesteps(config_, n, class_name());
    num_inference_steps_ = n;
    reset_step_order();
  }

  void set_eta(double eta) override { eta_ = eta; }

  Tensor add_noise(const TensorView& original, const TensorView& noise, double timestep) const override {
    return sched::add_noise_vp(original, noise, train_.alphas_cumprod, timestep, class_name());
  }

 protected:
  Tensor step_impl(const TensorView& model_output, size_t i, const TensorView& sample, NoiseSource& noise) override {
    const int64_t n = sched::check_step_inputs(model_output, sample, class_name());
    const int64_t t = int64_t(timesteps_[i]);
    const int64_t prev_t = t - config_.num_train_timesteps / num_inference_steps_;
    const float alpha_t = train_.alphas_cumprod.at(size_t(t));
    const float alpha_prev = prev_t >= 0 ? train_.alphas_cumprod.at(size_t(prev_t)) : final_alpha_cumprod_;
    const float beta_t = 1.0f - alpha_t;
    const float sqrt_alpha = std::sqrt(alpha_t), sqrt_beta = std::sqrt(beta_t);

    Tensor x0 = sched::x0_from_alpha_sigma(model_output, sample, config_, sqrt_alpha, sqrt_beta);
    const float* m = model_output.f32();
    const float* x = sample.f32();
    Tensor eps;
    if (config_.prediction_type == "epsilon") {
      eps = Tensor::copy_of(model_output);
    } else if (config_.prediction_type == "sample") {
      const float* p = x0.f32();
      eps = sched::map_like(sample, [&](int64_t k) { return (x[k] - sqrt_alpha * p[k]) / sqrt_beta; });
    } else {
      eps = sched::map_like(sample, [&](int64_t k) { return sqrt_alpha * m[k] + sqrt_beta * x[k]; });
    }
    sched::threshold_or_clip_sample(x0, config_);

    const float beta_prev = 1.0f - alpha_prev;
    const float variance = (beta_prev / beta_t) * (1.0f - alpha_t / alpha_prev);
    const float std_dev_t = float(eta_) * std::sqrt(variance);
    const float direction_coeff = std::sqrt(1.0f - alpha_prev - std_dev_t * std_dev_t);
    const float x0_coeff = std::sqrt(alpha_prev);
    const float* p = x0.f32();
    const float* e = eps.f32();
    Tensor prev = Tensor::empty(sample.shape);
    float* out = prev.f32();
    for (int64_t k = 0; k < n; ++k) out[k] = x0_coeff * p[k] + direction_coeff * e[k];
    if (eta_ > 0) {
      const Tensor z = noise.randn(model_output.shape);
      for (int64_t k = 0; k < n; ++k) out[k] = out[k] + std_dev_t * z.f32()[k];
    }
    return prev;
  }

 private:
  sched::TrainSchedule train_;
  float final_alpha_cumprod_ = 1.0f;
  int num_inference_steps_ = 0;
  double eta_ = 0.0;
};

}  // namespace

std::vector<ConfigKey> ddim_config_keys() {
  return {key_num_train_timesteps(),
          key_beta_start(),
          key_beta_end(),
          key_beta_schedule(),
          key_trained_betas(),
          {"clip_sample", ConfigType::Bool, true},
          {"set_alpha_to_one", ConfigType::Bool, true},
          {"steps_offset", ConfigType::Int, 0},
          {"prediction_type", ConfigType::String, "epsilon"},
          {"thresholding", ConfigType::Bool, false},
          {"dynamic_thresholding_ratio", ConfigType::Float, 0.995},
          {"clip_sample_range", ConfigType::Float, 1.0},
          {"sample_max_value", ConfigType::Float, 1.0},
          {"timestep_spacing", ConfigType::String, "leading"},
          {"rescale_betas_zero_snr", ConfigType::Bool, false}};
}

std::unique_ptr<Scheduler> make_ddim(SchedulerConfig config) { return std::make_unique<DDIM>(std::move(config)); }

}  // namespace kakusan
