// KDPM2AncestralDiscreteScheduler: k-diffusion's sample_dpm_2_ancestral. Like KDPM2, but each step only
// reaches sigma_down and then adds fresh noise of sigma_up; the midpoint is between sigma and sigma_down.

#include <cmath>

#include "schedulers/sample_ops.h"
#include "schedulers/scheduler_classes.h"
#include "schedulers/sigma_scheduler.h"

namespace kakusan {
namespace {

class KDPM2AncestralDiscrete final : public SigmaScheduler {
 public:
  explicit KDPM2AncestralDiscrete(SchedulerConfig c)
      : SigmaScheduler(std::move(c), {"linear", "scaled_linear", "squaredcos_cap_v2"}) {
    check_choice(class_name(), "prediction_type", config_.prediction_type, {"epsilon", "v_prediction"});
    check_choice(class_name(), "timestep_spacing", config_.timestep_spacing, {"linspace", "leading", "trailing"});
  }

  int order() const override { return 2; }

  void set_timesteps(int n) override {
    const TwoStageSchedule s = two_stage_schedule(n);
    const std::vector<float>& sig = s.sigmas;
    const size_t m = sig.size();
    std::vector<float> up(m), down(m), mid(m);
    for (size_t k = 0; k < m; ++k) {
      const float next = k + 1 < m ? sig[k + 1] : 0.0f;
      up[k] = std::sqrt(next * next * (sig[k] * sig[k] - next * next) / (sig[k] * sig[k]));
      down[k] = k + 1 < m ? std::sqrt(next * next - up[k] * up[k]) : 0.0f;
      mid[k] = geometric_midpoint(sig[k], down[k]);
    }
    mid[m - 1] = 0.0f;
    if (m >= 2) mid[m - 2] = 0.0f;
    sigmas_ = repeat_for_two_stages(sig);
    sigmas_interpol_ = repeat_for_two_stages(mid);
    sigmas_up_ = repeat_for_two_stages(up);
    sigmas_down_ = repeat_for_two_stages(down);
    // Each step's midpoint timestep follows its schedule timestep: mid[k - 1] before timestep k.
    timesteps_ = two_stage_timesteps(s.timesteps, mid);
    stored_sample_.reset();
    reset_step_order();
  }

 protected:
  float input_sigma(size_t i) const override {
    return stored_sample_ ? sigmas_interpol_[i - 1] : sigmas_[i];
  }

  Tensor step_impl(const TensorView& model_output, size_t i, const TensorView& sample, NoiseSource& noise) override {
    const int64_t n = sched::check_step_inputs(model_output, sample, class_name());
    const bool first_order = !stored_sample_.has_value();
    const size_t j = first_order ? i : i - 1;  // the table entry of this step's first half
    const float sigma = sigmas_[j];
    const float sigma_interpol = sigmas_interpol_[j];
    const float sigma_up = sigmas_up_[j];
    const float sigma_hat = sigma * (0.0f + 1.0f);
    const Tensor eps = noise.randn(model_output.shape);  // drawn on both halves, as diffusers does
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
      const float dt = sigmas_down_[i - 1] - sigma_hat;
      const float* x_start = stored_sample_->f32();
      const float* e = eps.f32();
      for (int64_t k = 0; k < n; ++k) {
        const float moved = x_start[k] + (x[k] - p[k]) / sigma_interpol * dt;
        out[k] = moved + e[k] * sigma_up;
      }
      stored_sample_.reset();
    }
    return prev;
  }

 private:
  std::vector<float> sigmas_interpol_, sigmas_up_, sigmas_down_;
  std::optional<Tensor> stored_sample_;  // the sample at the start of a step, kept for its second half
};

}  // namespace

std::vector<ConfigKey> kdpm2_ancestral_config_keys() { return kdpm2_config_keys(); }

std::unique_ptr<Scheduler> make_kdpm2_ancestral(SchedulerConfig config) {
  return std::make_unique<KDPM2AncestralDiscrete>(std::move(config));
}

}  // namespace kakusan
