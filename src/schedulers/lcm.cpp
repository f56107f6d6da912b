// LCMScheduler: multistep sampling of latent consistency models (Luo et al. 2023).
//
// Each step maps x_t to the model's consistency estimate (the predicted x0 blended with x_t by the boundary
// condition c_skip / c_out), then re-noises it to the next timestep with fresh noise from the generator;
// the last step returns the estimate itself. Timesteps are taken from a coarse "original" schedule of
// original_inference_steps evenly spaced training timesteps (the one the model was distilled on).

#include <cmath>

#include "schedulers/sample_ops.h"
#include "schedulers/schedule_math.h"
#include "schedulers/scheduler_classes.h"

namespace kakusan {
namespace {

class LCM final : public Scheduler {
 public:
  explicit LCM(SchedulerConfig c) : Scheduler(std::move(c)) {
    train_ = sched::make_train_schedule(config_, {"linear", "scaled_linear", "squaredcos_cap_v2"});
    final_alpha_cumprod_ = config_.set_alpha_to_one ? 1.0f : train_.alphas_cumprod.front();
    check_choice(class_name(), "prediction_type", config_.prediction_type, {"epsilon", "v_prediction", "sample"});
    // Two keys only this class has, read from its effective config rather than widening SchedulerConfig.
    original_steps_ = config_.json.at("original_inference_steps").get<int>();
    timestep_scaling_ = config_.json.at("timestep_scaling").get<double>();
    KK_CHECK(original_steps_ >= 1 && original_steps_ <= config_.num_train_timesteps, class_name(),
             ": original_inference_steps ", original_steps_, " must be between 1 and num_train_timesteps (",
             config_.num_train_timesteps, ")");
    KK_CHECK(std::isfinite(timestep_scaling_), class_name(), ": timestep_scaling must be a finite number");
  }

  // diffusers' set_timesteps(num_inference_steps) with strength 1: the original schedule k-1, 2k-1, ...,
  // original_steps*k - 1 (k = T // original_steps), descending, sampled at floor(linspace(0, L, n, endpoint
  // False)).
  void set_timesteps(int n) override {
    sched::check_num_steps(config_, n);
    KK_CHECK(n <= config_.num_train_timesteps, class_name(), ": num_inference_steps ", n,
             " cannot be larger than num_train_timesteps ", config_.num_train_timesteps);
    KK_CHECK(n <= original_steps_, class_name(), ": num_inference_steps ", n,
             " cannot be larger than original_inference_steps ", original_steps_,
             " (the schedule is a subset of the original one)");
    const int64_t k = config_.num_train_timesteps / original_steps_;
    const int64_t length = original_steps_;
    const double stride = double(length) / double(n);  // numpy's linspace step, in float64
    timesteps_.clear();
    for (int i = 0; i < n; ++i) {
      const int64_t index = int64_t(std::floor(double(i) * stride));
      const int64_t origin = length - 1 - index;  // the descending original schedule
      timesteps_.push_back(double((origin + 1) * k - 1));
    }
    reset_step_order();
  }

  Tensor add_noise(const TensorView& original, const TensorView& noise, double timestep) const override {
    return sched::add_noise_vp(original, noise, train_.alphas_cumprod, timestep, class_name());
  }

 protected:
  Tensor step_impl(const TensorView& model_output, size_t i, const TensorView& sample, NoiseSource& noise) override {
    const int64_t n = sched::check_step_inputs(model_output, sample, class_name());
    const int64_t t = int64_t(timesteps_[i]);
    const bool last = i + 1 == timesteps_.size();
    // The last step's "previous" timestep is the timestep itself (only its estimate is returned).
    const int64_t prev_t = last ? t : int64_t(timesteps_[i + 1]);
    const float alpha_t = train_.alphas_cumprod.at(size_t(t));
    const float alpha_prev = prev_t >= 0 ? train_.alphas_cumprod.at(size_t(prev_t)) : final_alpha_cumprod_;
    const float beta_t = 1.0f - alpha_t, beta_prev = 1.0f - alpha_prev;

    // Boundary condition in float32, as torch evaluates it on the int64 timestep tensor.
    const float scaled = float(t) * float(timestep_scaling_);
    const float sigma_data_sq = 0.25f;  // sigma_data = 0.5
    const float c_skip = sigma_data_sq / (scaled * scaled + sigma_data_sq);
    const float c_out = scaled / std::sqrt(scaled * scaled + sigma_data_sq);

    Tensor x0 = sched::x0_from_alpha_sigma(model_output, sample, config_, std::sqrt(alpha_t), std::sqrt(beta_t));
    sched::threshold_or_clip_sample(x0, config_);
    const float* p = x0.f32();
    const float* x = sample.f32();
    Tensor denoised = sched::map_like(sample, [&](int64_t k) { return c_out * p[k] + c_skip * x[k]; });
    // No noise on the last step (so one-step sampling is deterministic).
    if (last) return denoised;
    const Tensor z = noise.randn(model_output.shape);
    const float a = std::sqrt(alpha_prev), b = std::sqrt(beta_prev);
    const float* d = denoised.f32();
    const float* e = z.f32();
    Tensor prev = Tensor::empty(sample.shape);
    for (int64_t k = 0; k < n; ++k) prev.f32()[k] = a * d[k] + b * e[k];
    return prev;
  }

 private:
  sched::TrainSchedule train_;
  float final_alpha_cumprod_ = 1.0f;
  int original_steps_ = 50;
  double timestep_scaling_ = 10.0;
};

}  // namespace

std::vector<ConfigKey> lcm_config_keys() {
  return {key_num_train_timesteps(),
          key_beta_start(0.00085),
          key_beta_end(0.012),
          {"beta_schedule", ConfigType::String, "scaled_linear"},
          key_trained_betas(),
          {"original_inference_steps", ConfigType::Int, 50},
          {"clip_sample", ConfigType::Bool, false},
          {"clip_sample_range", ConfigType::Float, 1.0},
          {"set_alpha_to_one", ConfigType::Bool, true},
          {"steps_offset", ConfigType::Int, 0},
          {"prediction_type", ConfigType::String, "epsilon"},
          {"thresholding", ConfigType::Bool, false},
          {"dynamic_thresholding_ratio", ConfigType::Float, 0.995},
          {"sample_max_value", ConfigType::Float, 1.0},
          {"timestep_spacing", ConfigType::String, "leading"},
          {"timestep_scaling", ConfigType::Float, 10.0},
          {"rescale_betas_zero_snr", ConfigType::Bool, false}};
}

std::unique_ptr<Scheduler> make_lcm(SchedulerConfig config) { return std::make_unique<LCM>(std::move(config)); }

}  // namespace kakusan
