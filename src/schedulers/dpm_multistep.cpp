// DPMSolverMultistepScheduler: DPM-Solver / DPM-Solver++ (Lu et al. 2022), multistep, orders 1-3, and
// the SDE variants that add fresh noise every step. The diffusers default (dpmsolver++, order 2,
// midpoint) is A1111's "DPM++ 2M"; with use_karras_sigmas it is "DPM++ 2M Karras".

#include <cmath>
#include <tuple>

#include "schedulers/sample_ops.h"
#include "schedulers/scheduler_classes.h"
#include "schedulers/solver_base.h"

namespace kakusan {
namespace {

class DPMSolverMultistep final : public SolverScheduler {
 public:
  explicit DPMSolverMultistep(SchedulerConfig c) : SolverScheduler(std::move(c)) {
    // Types saved by sibling classes are mapped the way diffusers maps them.
    if (config_.algorithm_type == "deis") remap("algorithm_type", config_.algorithm_type, "dpmsolver++");
    if (config_.solver_type == "logrho" || config_.solver_type == "bh1" || config_.solver_type == "bh2")
      remap("solver_type", config_.solver_type, "midpoint");
    check_choice(class_name(), "algorithm_type", config_.algorithm_type,
                 {"dpmsolver++", "sde-dpmsolver++", "dpmsolver", "sde-dpmsolver"});
    check_choice(class_name(), "solver_type", config_.solver_type, {"midpoint", "heun"});
    check_choice(class_name(), "prediction_type", config_.prediction_type, {"epsilon", "v_prediction", "sample"});
    check_choice(class_name(), "final_sigmas_type", config_.final_sigmas_type, {"zero", "sigma_min"});
    check_choice(class_name(), "timestep_spacing", config_.timestep_spacing, {"linspace", "leading", "trailing"});
    KK_CHECK(config_.variance_type.empty(), class_name(), ": variance_type \"", config_.variance_type,
             "\" (a UNet that also predicts its variance) is not supported");
    KK_CHECK(data_prediction() || config_.final_sigmas_type != "zero", class_name(),
             ": final_sigmas_type \"zero\" is not supported for algorithm_type \"", config_.algorithm_type,
             "\"; choose \"sigma_min\"");
    KK_CHECK(!(sde() && config_.solver_order == 3), class_name(), ": solver_order 3 is not supported for \"",
             config_.algorithm_type, "\" (diffusers has no third-order SDE update)");
  }

  void set_timesteps(int n) override {
    sched::check_num_steps(config_, n);
    const int last = unclipped_timesteps();
    KK_CHECK(last >= 1, class_name(), ": lambda_min_clipped ", config_.lambda_min_clipped, " removes every timestep");
    std::vector<double> t = sched::solver_timesteps(config_, n, last);
    std::vector<double> s;
    if (config_.use_karras_sigmas) {
      std::tie(t, s) = karras_schedule(n);
    } else if (config_.use_lu_lambdas) {
      // Uniform in log-SNR (Lu et al. 2022): lambdas from log(sigma_max) down to log(sigma_min).
      const double lambda_min = table_.log_sigmas.front(), lambda_max = table_.log_sigmas.back();
      const std::vector<double> ramp = sched::np_linspace(0, 1, n);
      t.clear();
      for (double r : ramp) {
        s.push_back(std::exp(lambda_max + r * (lambda_min - lambda_max)));
        t.push_back(sched::np_round(sched::sigma_to_t(s.back(), table_.log_sigmas)));
      }
    } else {
      s = interpolated_sigmas(t);
    }
    install(std::move(t), s, config_.final_sigmas_type == "sigma_min" ? table_.sigma_min() : 0.0f);
  }

 protected:
  Tensor step_impl(const TensorView& model_output, size_t i, const TensorView& sample, NoiseSource& noise) override {
    sched::check_step_inputs(model_output, sample, class_name());
    const size_t len = timesteps_.size();
    const bool lower_order_final =
        i == len - 1 && (config_.euler_at_final || (config_.lower_order_final && len < 15) ||
                         config_.final_sigmas_type == "zero");
    const bool lower_order_second = i == len - 2 && config_.lower_order_final && len < 15;
    push_output(convert_model_output(model_output, sample, i));
    std::optional<Tensor> z;
    if (sde()) z = noise.randn(model_output.shape);
    const float* zp = z ? z->f32() : nullptr;
    Tensor prev;
    if (config_.solver_order == 1 || lower_order_nums_ < 1 || lower_order_final)
      prev = first_order(sample, i, zp);
    else if (config_.solver_order == 2 || lower_order_nums_ < 2 || lower_order_second)
      prev = second_order(sample, i, zp);
    else
      prev = third_order(sample, i);
    if (lower_order_nums_ < config_.solver_order) ++lower_order_nums_;
    return prev;
  }

 private:
  bool sde() const { return config_.algorithm_type.rfind("sde-", 0) == 0; }
  bool data_prediction() const { return config_.algorithm_type.find("++") != std::string::npos; }

  void remap(const char* key, std::string& field, const char* value) {
    field = value;
    config_.json[key] = value;
  }

  // DPM-Solver++ works on the predicted x0, DPM-Solver on the predicted noise.
  Tensor convert_model_output(const TensorView& m, const TensorView& x, size_t i) const {
    if (data_prediction()) return predicted_x0(m, x, i);
    Tensor eps = predicted_noise(m, x, i);
    if (config_.thresholding) {
      const AlphaSigma s = alpha_sigma(sigmas_[i]);
      const float* xp = x.f32();
      const float* e = eps.f32();
      Tensor x0 = sched::map_like(x, [&](int64_t k) { return (xp[k] - s.sigma * e[k]) / s.alpha; });
      sched::threshold_sample(x0, config_.dynamic_thresholding_ratio, config_.sample_max_value);
      eps = noise_from_x0(x0, x, s);
    }
    return eps;
  }

  Tensor first_order(const TensorView& x, size_t i, const float* z) const {
    const AlphaSigma t = alpha_sigma(sigmas_[i + 1]), s = alpha_sigma(sigmas_[i]);
    const float h = t.lambda - s.lambda;
    const float* m = output(0)->f32();
    const float* xp = x.f32();
    const std::string& type = config_.algorithm_type;
    if (type == "dpmsolver++" || type == "dpmsolver") return dpm_first_order(x, t, s, h, m, type == "dpmsolver++");
    if (type == "sde-dpmsolver++")
      return combine(x.shape, {{t.sigma / s.sigma * std::exp(-h), xp},
                               {t.alpha * (1.0f - std::exp(-2.0f * h)), m},
                               {t.sigma * std::sqrt(1.0f - std::exp(-2.0f * h)), z}});
    return combine(x.shape, {{t.alpha / s.alpha, xp},
                             {-(2.0f * (t.sigma * (std::exp(h) - 1.0f))), m},
                             {t.sigma * std::sqrt(std::exp(2.0f * h) - 1.0f), z}});
  }

  Tensor second_order(const TensorView& x, size_t i, const float* z) const {
    const AlphaSigma t = alpha_sigma(sigmas_[i + 1]), s0 = alpha_sigma(sigmas_[i]), s1 = alpha_sigma(sigmas_[i - 1]);
    const float h = t.lambda - s0.lambda, h0 = s0.lambda - s1.lambda;
    const float r0 = h0 / h;
    const float* m0 = output(0)->f32();
    const float* m1 = output(1)->f32();
    const float inv_r0 = 1.0f / r0;
    const Tensor d1 = sched::map_like(x, [&](int64_t k) { return inv_r0 * (m0[k] - m1[k]); });
    const float* D1 = d1.f32();
    const float* xp = x.f32();
    const bool midpoint = config_.solver_type == "midpoint";
    const std::string& type = config_.algorithm_type;
    if (type == "dpmsolver++" || type == "dpmsolver")
      return dpm_second_order(x, t, s0, h, m0, D1, midpoint, type == "dpmsolver++");
    if (type == "sde-dpmsolver++") {
      const float b = t.alpha * (1.0f - std::exp(-2.0f * h));
      const float c = midpoint ? 0.5f * b : t.alpha * ((1.0f - std::exp(-2.0f * h)) / (-2.0f * h) + 1.0f);
      return combine(x.shape, {{t.sigma / s0.sigma * std::exp(-h), xp},
                               {b, m0},
                               {c, D1},
                               {t.sigma * std::sqrt(1.0f - std::exp(-2.0f * h)), z}});
    }
    const float b = t.sigma * (std::exp(h) - 1.0f);
    const float c = midpoint ? -b : -(2.0f * (t.sigma * ((std::exp(h) - 1.0f) / h - 1.0f)));
    return combine(x.shape, {{t.alpha / s0.alpha, xp},
                             {-(2.0f * b), m0},
                             {c, D1},
                             {t.sigma * std::sqrt(std::exp(2.0f * h) - 1.0f), z}});
  }

  Tensor third_order(const TensorView& x, size_t i) const {
    const AlphaSigma t = alpha_sigma(sigmas_[i + 1]), s0 = alpha_sigma(sigmas_[i]);
    const AlphaSigma s1 = alpha_sigma(sigmas_[i - 1]), s2 = alpha_sigma(sigmas_[i - 2]);
    const float h = t.lambda - s0.lambda, h0 = s0.lambda - s1.lambda, h1 = s1.lambda - s2.lambda;
    const float r0 = h0 / h, r1 = h1 / h;
    const float* m0 = output(0)->f32();
    const float* m1 = output(1)->f32();
    const float* m2 = output(2)->f32();
    const float inv_r0 = 1.0f / r0, inv_r1 = 1.0f / r1, w = r0 / (r0 + r1), inv_sum = 1.0f / (r0 + r1);
    const Tensor d1_0 = sched::map_like(x, [&](int64_t k) { return inv_r0 * (m0[k] - m1[k]); });
    const Tensor d1_1 = sched::map_like(x, [&](int64_t k) { return inv_r1 * (m1[k] - m2[k]); });
    const float* a = d1_0.f32();
    const float* b = d1_1.f32();
    const Tensor d1 = sched::map_like(x, [&](int64_t k) { return a[k] + w * (a[k] - b[k]); });
    const Tensor d2 = sched::map_like(x, [&](int64_t k) { return inv_sum * (a[k] - b[k]); });
    return dpm_third_order(x, t, s0, h, m0, d1.f32(), d2.f32(), config_.algorithm_type == "dpmsolver++");
  }
};

}  // namespace

std::vector<ConfigKey> dpm_multistep_config_keys() {
  std::vector<ConfigKey> keys = solver_leading_keys();
  keys.insert(keys.end(), {{"algorithm_type", ConfigType::String, "dpmsolver++"},
                           {"solver_type", ConfigType::String, "midpoint"},
                           {"lower_order_final", ConfigType::Bool, true},
                           {"euler_at_final", ConfigType::Bool, false},
                           {"use_karras_sigmas", ConfigType::Bool, false},
                           {"use_lu_lambdas", ConfigType::Bool, false},
                           {"final_sigmas_type", ConfigType::String, "zero"},
                           {"lambda_min_clipped", ConfigType::Float, -INFINITY},
                           {"variance_type", ConfigType::OptionalString, nullptr},
                           {"timestep_spacing", ConfigType::String, "linspace"},
                           {"steps_offset", ConfigType::Int, 0},
                           {"rescale_betas_zero_snr", ConfigType::Bool, false}});
  return keys;
}

std::unique_ptr<Scheduler> make_dpm_multistep(SchedulerConfig config) {
  return std::make_unique<DPMSolverMultistep>(std::move(config));
}

}  // namespace kakusan
