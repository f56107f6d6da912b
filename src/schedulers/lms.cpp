// LMSDiscreteScheduler: linear multistep on the Karras ODE (k-diffusion's sample_lms, order 4). The
// coefficients integrate each Lagrange basis polynomial over [sigma_i, sigma_{i+1}]; diffusers uses
// scipy.integrate.quad, which is exact for these cubics, so a 4-point Gauss-Legendre rule gives the same.

#include <cmath>
#include <deque>

#include "schedulers/sample_ops.h"
#include "schedulers/scheduler_classes.h"
#include "schedulers/sigma_scheduler.h"

namespace kakusan {
namespace {

constexpr int kLmsOrder = 4;  // the default `order` argument of diffusers' step()

class LMSDiscrete final : public SigmaScheduler {
 public:
  explicit LMSDiscrete(SchedulerConfig c)
      : SigmaScheduler(std::move(c), {"linear", "scaled_linear", "squaredcos_cap_v2"}) {
    check_choice(class_name(), "prediction_type", config_.prediction_type, {"epsilon", "v_prediction", "sample"});
    check_choice(class_name(), "timestep_spacing", config_.timestep_spacing, {"linspace", "leading", "trailing"});
  }

  void set_timesteps(int n) override {
    const Schedule s = interpolated_schedule(n, /*config_limits=*/false);
    sigmas_ = to_f32(s.sigmas);
    sigmas_.push_back(0.0f);
    timesteps_.clear();
    for (double t : s.timesteps) timesteps_.push_back(config_.use_karras_sigmas ? t : sched::f32(t));
    derivatives_.clear();
    reset_step_order();
  }

 protected:
  Tensor step_impl(const TensorView& model_output, size_t i, const TensorView& sample, NoiseSource&) override {
    const int64_t n = sched::check_step_inputs(model_output, sample, class_name());
    const float sigma = sigmas_[i];
    const Tensor x0 = sched::x0_from_sigma(model_output, sample, config_, sigma);
    const float* x = sample.f32();
    const float* p = x0.f32();
    Tensor derivative = Tensor::empty(sample.shape);
    for (int64_t k = 0; k < n; ++k) derivative.f32()[k] = (x[k] - p[k]) / sigma;
    derivatives_.push_back(std::move(derivative));
    if (derivatives_.size() > kLmsOrder) derivatives_.pop_front();

    const int order = int(std::min<size_t>(i + 1, kLmsOrder));
    Tensor sum = Tensor::zeros(sample.shape);
    float* acc = sum.f32();
    for (int j = 0; j < order; ++j) {
      const float coeff = float(lms_coefficient(order, i, j));
      const float* d = derivatives_[derivatives_.size() - 1 - size_t(j)].f32();  // newest first
      for (int64_t k = 0; k < n; ++k) acc[k] = acc[k] + coeff * d[k];
    }
    Tensor prev = Tensor::empty(sample.shape);
    for (int64_t k = 0; k < n; ++k) prev.f32()[k] = x[k] + acc[k];
    return prev;
  }

 private:
  // Integral over [sigma_t, sigma_{t+1}] of the Lagrange basis polynomial of sigma_{t - current}.
  double lms_coefficient(int order, size_t t, int current) const {
    auto basis = [&](double tau) {
      double prod = 1.0;
      for (int k = 0; k < order; ++k) {
        if (k == current) continue;
        const double sk = sigmas_[t - size_t(k)];
        prod *= (tau - sk) / (double(sigmas_[t - size_t(current)]) - sk);
      }
      return prod;
    };
    static constexpr double kNodes[4] = {-0.8611363115940526, -0.3399810435848563, 0.3399810435848563,
                                         0.8611363115940526};
    static constexpr double kWeights[4] = {0.3478548451374538, 0.6521451548625461, 0.6521451548625461,
                                           0.3478548451374538};
    const double a = sigmas_[t], b = sigmas_[t + 1];
    double integral = 0;
    for (int q = 0; q < 4; ++q) integral += kWeights[q] * basis((a + b) / 2 + (b - a) / 2 * kNodes[q]);
    return integral * (b - a) / 2;
  }

  std::deque<Tensor> derivatives_;  // the last kLmsOrder derivatives, oldest first
};

}  // namespace

std::vector<ConfigKey> lms_config_keys() {
  return {key_num_train_timesteps(),
          key_beta_start(),
          key_beta_end(),
          key_beta_schedule(),
          key_trained_betas(),
          {"use_karras_sigmas", ConfigType::Bool, false},
          {"prediction_type", ConfigType::String, "epsilon"},
          {"timestep_spacing", ConfigType::String, "linspace"},
          {"steps_offset", ConfigType::Int, 0}};
}

std::unique_ptr<Scheduler> make_lms(SchedulerConfig config) {
  return std::make_unique<LMSDiscrete>(std::move(config));
}

}  // namespace kakusan
