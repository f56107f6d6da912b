// DEISMultistepScheduler: diffusion exponential integrator sampler (Zhang & Chen 2022), the "log-rho"
// multistep variant: polynomial extrapolation of the noise prediction in log(sigma/alpha).

#include <cmath>
#include <tuple>

#include "schedulers/sample_ops.h"
#include "schedulers/scheduler_classes.h"
#include "schedulers/solver_base.h"

namespace kakusan {
namespace {

class DEISMultistep final : public SolverScheduler {
 public:
  explicit DEISMultistep(SchedulerConfig c) : SolverScheduler(std::move(c)) {
    if (config_.algorithm_type == "dpmsolver" || config_.algorithm_type == "dpmsolver++") {
      config_.algorithm_type = "deis";
      config_.json["algorithm_type"] = "deis";
    }
    if (config_.solver_type == "midpoint" || config_.solver_type == "heun" || config_.solver_type == "bh1" ||
        config_.solver_type == "bh2") {
      config_.solver_type = "logrho";
      config_.json["solver_type"] = "logrho";
    }
    check_choice(class_name(), "algorithm_type", config_.algorithm_type, {"deis"});
    check_choice(class_name(), "solver_type", config_.solver_type, {"logrho"});
    check_choice(class_name(), "prediction_type", config_.prediction_type, {"epsilon", "v_prediction", "sample"});
    check_choice(class_name(), "timestep_spacing", config_.timestep_spacing, {"linspace", "leading", "trailing"});
  }

  void set_timesteps(int n) override {
    sched::check_num_steps(config_, n);
    std::vector<double> t = sched::solver_timesteps(config_, n, config_.num_train_timesteps);
    std::vector<double> s;
    float final_sigma = table_.sigma_min();  // DEIS ends at sigma_min, not at 0
    if (config_.use_karras_sigmas) {
      std::tie(t, s) = karras_schedule(n);
      final_sigma = float(s.back());
    } else {
      s = interpolated_sigmas(t);
    }
    install(std::move(t), s, final_sigma);
  }

 protected:
  Tensor step_impl(const TensorView& model_output, size_t i, const TensorView& sample, NoiseSource&) override {
    sched::check_step_inputs(model_output, sample, class_name());
    const size_t len = timesteps_.size();
    const bool lower_order_final = i == len - 1 && config_.lower_order_final && len < 15;
    const bool lower_order_second = i == len - 2 && config_.lower_order_final && len < 15;
    push_output(convert_model_output(model_output, sample, i));
    Tensor prev;
    if (config_.solver_order == 1 || lower_order_nums_ < 1 || lower_order_final)
      prev = first_order(sample, i);
    else if (config_.solver_order == 2 || lower_order_nums_ < 2 || lower_order_second)
      prev = second_order(sample, i);
    else
      prev = third_order(sample, i);
    if (lower_order_nums_ < config_.solver_order) ++lower_order_nums_;
    return prev;
  }

 private:
  // DEIS extrapolates the noise prediction: eps = (x - alpha * x0) / sigma, with x0 thresholded if asked.
  Tensor convert_model_output(const TensorView& m, const TensorView& x, size_t i) const {
    return noise_from_x0(predicted_x0(m, x, i), x, alpha_sigma(sigmas_[i]));
  }

  Tensor first_order(const TensorView& x, size_t i) const {
    const AlphaSigma t = alpha_sigma(sigmas_[i + 1]), s = alpha_sigma(sigmas_[i]);
    const float h = t.lambda - s.lambda;
    return combine(x.shape, {{t.alpha / s.alpha, x.f32()}, {-(t.sigma * (std::exp(h) - 1.0f)), output(0)->f32()}});
  }

  // x_t = alpha_t * (x / alpha_s0 + sum_j coef_j * m_j), every term rounded as torch rounds it.
  Tensor extrapolate(const TensorView& x, float alpha_t, float alpha_s0, std::initializer_list<Term> terms) const {
    const float* xp = x.f32();
    return sched::map_like(x, [&](int64_t k) {
      float acc = xp[k] / alpha_s0;
      for (const Term& term : terms) acc = acc + term.coeff * term.values[k];
      return alpha_t * acc;
    });
  }

  Tensor second_order(const TensorView& x, size_t i) const {
    const AlphaSigma t = alpha_sigma(sigmas_[i + 1]), s0 = alpha_sigma(sigmas_[i]), s1 = alpha_sigma(sigmas_[i - 1]);
    const float rho_t = t.sigma / t.alpha, rho_s0 = s0.sigma / s0.alpha, rho_s1 = s1.sigma / s1.alpha;
    auto ind = [](float tt, float b, float c) {
      return tt * (-std::log(c) + std::log(tt) - 1.0f) / (std::log(b) - std::log(c));
    };
    const float coef1 = ind(rho_t, rho_s0, rho_s1) - ind(rho_s0, rho_s0, rho_s1);
    const float coef2 = ind(rho_t, rho_s1, rho_s0) - ind(rho_s0, rho_s1, rho_s0);
    return extrapolate(x, t.alpha, s0.alpha, {{coef1, output(0)->f32()}, {coef2, output(1)->f32()}});
  }

  Tensor third_order(const TensorView& x, size_t i) const {
    const AlphaSigma t = alpha_sigma(sigmas_[i + 1]), s0 = alpha_sigma(sigmas_[i]);
    const AlphaSigma s1 = alpha_sigma(sigmas_[i - 1]), s2 = alpha_sigma(sigmas_[i - 2]);
    const float rho_t = t.sigma / t.alpha, rho_s0 = s0.sigma / s0.alpha;
    const float rho_s1 = s1.sigma / s1.alpha, rho_s2 = s2.sigma / s2.alpha;
    auto ind = [](float tt, float b, float c, float d) {
      const float lt = std::log(tt), lb = std::log(b), lc = std::log(c), ld = std::log(d);
      const float numerator = tt * (lc * (ld - lt + 1.0f) - ld * lt + ld + lt * lt - 2.0f * lt + 2.0f);
      return numerator / ((lb - lc) * (lb - ld));
    };
    const float coef1 = ind(rho_t, rho_s0, rho_s1, rho_s2) - ind(rho_s0, rho_s0, rho_s1, rho_s2);
    const float coef2 = ind(rho_t, rho_s1, rho_s2, rho_s0) - ind(rho_s0, rho_s1, rho_s2, rho_s0);
    const float coef3 = ind(rho_t, rho_s2, rho_s0, rho_s1) - ind(rho_s0, rho_s2, rho_s0, rho_s1);
    return extrapolate(x, t.alpha, s0.alpha,
                       {{coef1, output(0)->f32()}, {coef2, output(1)->f32()}, {coef3, output(2)->f32()}});
  }
};

}  // namespace

std::vector<ConfigKey> deis_config_keys() {
  std::vector<ConfigKey> keys = solver_leading_keys();
  keys.insert(keys.end(), {{"algorithm_type", ConfigType::String, "deis"},
                           {"solver_type", ConfigType::String, "logrho"},
                           {"lower_order_final", ConfigType::Bool, true},
                           {"use_karras_sigmas", ConfigType::Bool, false},
                           {"timestep_spacing", ConfigType::String, "linspace"},
                           {"steps_offset", ConfigType::Int, 0}});
  return keys;
}

std::unique_ptr<Scheduler> make_deis(SchedulerConfig config) {
  return std::make_unique<DEISMultistep>(std::move(config));
}

}  // namespace kakusan
