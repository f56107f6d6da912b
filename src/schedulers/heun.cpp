// HeunDiscreteScheduler: Algorithm 2 of Karras et al. 2022 without churn. Each step is two UNet calls: an
// Euler predictor to the next sigma, then a corrector that averages both slopes, so the timesteps repeat
// (t0, t1, t1, t2, t2, ...) and the class keeps the first half's slope, dt and sample between calls.

#include <cmath>

#include "schedulers/sample_ops.h"
#include "schedulers/scheduler_classes.h"
#include "schedulers/sigma_scheduler.h"

namespace kakusan {
namespace {

class HeunDiscrete final : public SigmaScheduler {
 public:
  explicit HeunDiscrete(SchedulerConfig c)
      : SigmaScheduler(std::move(c), {"linear", "scaled_linear", "squaredcos_cap_v2", "exp"}) {
    check_choice(class_name(), "prediction_type", config_.prediction_type, {"epsilon", "v_prediction", "sample"});
    check_choice(class_name(), "timestep_spacing", config_.timestep_spacing, {"linspace", "leading", "trailing"});
  }

  int order() const override { return 2; }

  void set_timesteps(int n) override {
    const Schedule s = interpolated_schedule(n, /*config_limits=*/true);
    std::vector<float> sig = to_f32(s.sigmas);
    sig.push_back(0.0f);
    // [s0, s1, s1, ..., s_{n-1}, s_{n-1}, 0] and [t0, t1, t1, ..., t_{n-1}, t_{n-1}]
    sigmas_.assign(1, sig.front());
    for (size_t k = 1; k + 1 < sig.size(); ++k) sigmas_.insert(sigmas_.end(), 2, sig[k]);
    sigmas_.push_back(sig.back());
    timesteps_.assign(1, config_.use_karras_sigmas ? s.timesteps.front() : sched::f32(s.timesteps.front()));
    for (size_t k = 1; k < s.timesteps.size(); ++k)
      timesteps_.insert(timesteps_.end(), 2, config_.use_karras_sigmas ? s.timesteps[k] : sched::f32(s.timesteps[k]));
    first_half_.reset();
    reset_step_order();
  }

 protected:
  Tensor step_impl(const TensorView& model_output, size_t i, const TensorView& sample, NoiseSource&) override {
    const int64_t n = sched::check_step_inputs(model_output, sample, class_name());
    const bool first_order = !first_half_.has_value();
    const float sigma = first_order ? sigmas_[i] : sigmas_[i - 1];
    const float sigma_next = first_order ? sigmas_[i + 1] : sigmas_[i];
    const float sigma_hat = sigma * (0.0f + 1.0f);
    Tensor x0 = sched::x0_from_sigma(model_output, sample, config_, first_order ? sigma_hat : sigma_next);
    if (config_.clip_sample) sched::clip_sample(x0, config_.clip_sample_range);
    const float* x = sample.f32();
    const float* p = x0.f32();
    Tensor prev = Tensor::empty(sample.shape);
    float* out = prev.f32();
    if (first_order) {
      FirstHalf h{Tensor::empty(sample.shape), sigma_next - sigma_hat, Tensor::copy_of(sample)};
      float* d = h.derivative.f32();
      for (int64_t k = 0; k < n; ++k) {
        d[k] = (x[k] - p[k]) / sigma_hat;
        out[k] = x[k] + d[k] * h.dt;
      }
      first_half_ = std::move(h);
    } else {
      const float* d1 = first_half_->derivative.f32();
      const float* x_start = first_half_->sample.f32();
      const float dt = first_half_->dt;
      for (int64_t k = 0; k < n; ++k) {
        const float d2 = (x[k] - p[k]) / sigma_next;
        const float derivative = (d1[k] + d2) / 2.0f;
        out[k] = x_start[k] + derivative * dt;
      }
      first_half_.reset();
    }
    return prev;
  }

 private:
  struct FirstHalf {
    Tensor derivative;
    float dt;
    Tensor sample;
  };
  std::optional<FirstHalf> first_half_;  // set between the two halves of a step
};

}  // namespace

std::vector<ConfigKey> heun_config_keys() {
  return {key_num_train_timesteps(),
          key_beta_start(0.00085),
          key_beta_end(0.012),
          key_beta_schedule(),
          key_trained_betas(),
          {"prediction_type", ConfigType::String, "epsilon"},
          {"use_karras_sigmas", ConfigType::Bool, false},
          {"clip_sample", ConfigType::Bool, false},
          {"clip_sample_range", ConfigType::Float, 1.0},
          {"timestep_spacing", ConfigType::String, "linspace"},
          {"steps_offset", ConfigType::Int, 0}};
}

std::unique_ptr<Scheduler> make_heun(SchedulerConfig config) {
  return std::make_unique<HeunDiscrete>(std::move(config));
}

}  // namespace kakusan
