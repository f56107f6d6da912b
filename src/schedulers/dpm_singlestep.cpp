// DPMSolverSinglestepScheduler: singlestep DPM-Solver / DPM-Solver++ (Lu et al. 2022). Steps are grouped
// by the order list (1, 2, 1, 2, ... for order 2): a group starts from the sample of its first step and
// reuses the model outputs collected inside the group.
#pragma GCC optimize("fp-contract=off")  // round every product on its own, as torch's kernels do

#include <cmath>
#include <tuple>

#include "schedulers/sample_ops.h"
#include "schedulers/scheduler_classes.h"
#include "schedulers/solver_base.h"

namespace kakusan {
namespace {

class DPMSolverSinglestep final : public SolverScheduler {
 public:
  explicit DPMSolverSinglestep(SchedulerConfig c) : SolverScheduler(std::move(c)) {
    if (config_.algorithm_type == "deis") remap("algorithm_type", config_.algorithm_type, "dpmsolver++");
    if (config_.solver_type == "logrho" || config_.solver_type == "bh1" || config_.solver_type == "bh2")
      remap("solver_type", config_.solver_type, "midpoint");
    check_choice(class_name(), "algorithm_type", config_.algorithm_type, {"dpmsolver++", "dpmsolver"});
    check_choice(class_name(), "solver_type", config_.solver_type, {"midpoint", "heun"});
    check_choice(class_name(), "prediction_type", config_.prediction_type, {"epsilon", "v_prediction", "sample"});
    check_choice(class_name(), "final_sigmas_type", config_.final_sigmas_type, {"zero", "sigma_min"});
    KK_CHECK(config_.variance_type.empty(), class_name(), ": variance_type \"", config_.variance_type,
             "\" (a UNet that also predicts its variance) is not supported");
    KK_CHECK(config_.algorithm_type == "dpmsolver++" || config_.final_sigmas_type != "zero", class_name(),
             ": final_sigmas_type \"zero\" is not supported for algorithm_type \"", config_.algorithm_type,
             "\"; choose \"sigma_min\"");
  }

  void set_timesteps(int n) override {
    sched::check_num_steps(config_, n);
    // This class has no timestep_spacing: always linspace over the unclipped range.
    const int last = unclipped_timesteps();
    KK_CHECK(last >= 1, class_name(), ": lambda_min_clipped ", config_.lambda_min_clipped, " removes every timestep");
    const std::vector<double> grid = sched::np_linspace(0, double(last - 1), n + 1);
    std::vector<double> t, s;
    for (int k = n; k >= 1; --k) t.push_back(sched::np_round(grid[size_t(k)]));
    if (config_.use_karras_sigmas)
      std::tie(t, s) = karras_schedule(n);
    else
      s = interpolated_sigmas(t);
    install(std::move(t), s, config_.final_sigmas_type == "sigma_min" ? table_.front() : 0.0f);
    // diffusers silently switches lower_order_final on for uneven step counts and for a zero final sigma.
    if (!config_.lower_order_final && (n % config_.solver_order != 0 || config_.final_sigmas_type == "zero")) {
      config_.lower_order_final = true;
      config_.json["lower_order_final"] = true;
    }
    order_list_ = order_list(n);
    start_sample_.reset();
  }

 protected:
  Tensor step_impl(const TensorView& model_output, size_t i, const TensorView& sample, NoiseSource&) override {
    sched::check_step_inputs(model_output, sample, class_name());
    push_output(convert_model_output(model_output, sample, i));
    int order = order_list_.at(i);
    while (output(size_t(order - 1)) == nullptr) --order;
    // A group starts from its first step's sample (a group entered midway starts from the current one).
    if (order == 1 || !start_sample_) start_sample_ = Tensor::copy_of(sample);
    const TensorView x = start_sample_->view();
    if (order == 1) return first_order(x, i);
    if (order == 2) return second_order(x, i);
    return third_order(x, i);
  }

 private:
  void remap(const char* key, std::string& field, const char* value) {
    field = value;
    config_.json[key] = value;
  }

  std::vector<int> order_list(int steps) const {
    const int order = config_.solver_order;
    std::vector<int> orders;
    auto repeat = [&](std::initializer_list<int> pattern, int times) {
      for (int r = 0; r < times; ++r) orders.insert(orders.end(), pattern);
    };
    if (config_.lower_order_final) {
      if (order == 3) {
        if (steps % 3 == 0) repeat({1, 2, 3}, steps / 3 - 1), repeat({1, 2}, 1), repeat({1}, 1);
        else if (steps % 3 == 1) repeat({1, 2, 3}, steps / 3), repeat({1}, 1);
        else repeat({1, 2, 3}, steps / 3), repeat({1, 2}, 1);
      } else if (order == 2) {
        if (steps % 2 == 0) repeat({1, 2}, steps / 2 - 1), repeat({1, 1}, 1);
        else repeat({1, 2}, steps / 2), repeat({1}, 1);
      } else {
        repeat({1}, steps);
      }
    } else {
      if (order == 3) repeat({1, 2, 3}, steps / 3);
      else if (order == 2) repeat({1, 2}, steps / 2);
      else repeat({1}, steps);
    }
    return orders;
  }

  Tensor convert_model_output(const TensorView& m, const TensorView& x, size_t i) const {
    const AlphaSigma s = alpha_sigma(sigmas_[i]);
    if (config_.algorithm_type == "dpmsolver++") {
      Tensor x0 = sched::x0_from_alpha_sigma(m, x, config_, s.alpha, s.sigma);
      if (config_.thresholding) sched::threshold_sample(x0, config_.dynamic_thresholding_ratio, config_.sample_max_value);
      return x0;
    }
    const float* mp = m.f32();
    const float* xp = x.f32();
    if (config_.prediction_type == "epsilon") return Tensor::copy_of(m);
    if (config_.prediction_type == "sample")
      return sched::map_like(x, [&](int64_t k) { return (xp[k] - s.alpha * mp[k]) / s.sigma; });
    return sched::map_like(x, [&](int64_t k) { return s.alpha * mp[k] + s.sigma * xp[k]; });
  }

  bool plus_plus() const { return config_.algorithm_type == "dpmsolver++"; }

  Tensor first_order(const TensorView& x, size_t i) const {
    const AlphaSigma t = alpha_sigma(sigmas_[i + 1]), s = alpha_sigma(sigmas_[i]);
    const float h = t.lambda - s.lambda;
    const float* m = output(0)->f32();
    if (plus_plus()) return combine(x.shape, {{t.sigma / s.sigma, x.f32()}, {-(t.alpha * (std::exp(-h) - 1.0f)), m}});
    return combine(x.shape, {{t.alpha / s.alpha, x.f32()}, {-(t.sigma * (std::exp(h) - 1.0f)), m}});
  }

  Tensor second_order(const TensorView& x, size_t i) const {
    const AlphaSigma t = alpha_sigma(sigmas_[i + 1]), s0 = alpha_sigma(sigmas_[i]), s1 = alpha_sigma(sigmas_[i - 1]);
    const float h = t.lambda - s1.lambda, h0 = s0.lambda - s1.lambda;
    const float r0 = h0 / h;
    const float* m0 = output(0)->f32();
    const float* m1 = output(1)->f32();
    const float inv_r0 = 1.0f / r0;
    const Tensor d1 = sched::map_like(x, [&](int64_t k) { return inv_r0 * (m0[k] - m1[k]); });
    const bool midpoint = config_.solver_type == "midpoint";
    if (plus_plus()) {
      const float b = t.alpha * (std::exp(-h) - 1.0f);
      const float c = midpoint ? -(0.5f * b) : t.alpha * ((std::exp(-h) - 1.0f) / h + 1.0f);
      return combine(x.shape, {{t.sigma / s1.sigma, x.f32()}, {-b, m1}, {c, d1.f32()}});
    }
    const float b = t.sigma * (std::exp(h) - 1.0f);
    const float c = midpoint ? -(0.5f * b) : -(t.sigma * ((std::exp(h) - 1.0f) / h - 1.0f));
    return combine(x.shape, {{t.alpha / s1.alpha, x.f32()}, {-b, m1}, {c, d1.f32()}});
  }

  Tensor third_order(const TensorView& x, size_t i) const {
    const AlphaSigma t = alpha_sigma(sigmas_[i + 1]), s0 = alpha_sigma(sigmas_[i]);
    const AlphaSigma s1 = alpha_sigma(sigmas_[i - 1]), s2 = alpha_sigma(sigmas_[i - 2]);
    const float h = t.lambda - s2.lambda, h0 = s0.lambda - s2.lambda, h1 = s1.lambda - s2.lambda;
    const float r0 = h0 / h, r1 = h1 / h;
    const float* m0 = output(0)->f32();
    const float* m1 = output(1)->f32();
    const float* m2 = output(2)->f32();
    const float inv_r0 = 1.0f / r0, inv_r1 = 1.0f / r1, dr = r0 - r1;
    const Tensor d1_0 = sched::map_like(x, [&](int64_t k) { return inv_r1 * (m1[k] - m2[k]); });
    const Tensor d1_1 = sched::map_like(x, [&](int64_t k) { return inv_r0 * (m0[k] - m2[k]); });
    const float* a = d1_0.f32();
    const float* b = d1_1.f32();
    const Tensor d1 = sched::map_like(x, [&](int64_t k) { return (r0 * a[k] - r1 * b[k]) / dr; });
    const Tensor d2 = sched::map_like(x, [&](int64_t k) { return 2.0f * (b[k] - a[k]) / dr; });
    const bool midpoint = config_.solver_type == "midpoint";
    if (plus_plus()) {
      const float e = std::exp(-h) - 1.0f;
      if (midpoint)
        return combine(x.shape, {{t.sigma / s2.sigma, x.f32()}, {-(t.alpha * e), m2}, {t.alpha * (e / h + 1.0f), b}});
      return combine(x.shape, {{t.sigma / s2.sigma, x.f32()},
                               {-(t.alpha * e), m2},
                               {t.alpha * (e / h + 1.0f), d1.f32()},
                               {-(t.alpha * ((std::exp(-h) - 1.0f + h) / (h * h) - 0.5f)), d2.f32()}});
    }
    const float e = std::exp(h) - 1.0f;
    if (midpoint)
      return combine(x.shape, {{t.alpha / s2.alpha, x.f32()}, {-(t.sigma * e), m2}, {-(t.sigma * (e / h - 1.0f)), b}});
    return combine(x.shape, {{t.alpha / s2.alpha, x.f32()},
                             {-(t.sigma * e), m2},
                             {-(t.sigma * (e / h - 1.0f)), d1.f32()},
                             {-(t.sigma * ((std::exp(h) - 1.0f - h) / (h * h) - 0.5f)), d2.f32()}});
  }

  std::vector<int> order_list_;
  std::optional<Tensor> start_sample_;  // the sample at the start of the current group of steps
};

}  // namespace

std::vector<ConfigKey> dpm_singlestep_config_keys() {
  return {key_num_train_timesteps(),
          key_beta_start(),
          key_beta_end(),
          key_beta_schedule(),
          key_trained_betas(),
          {"solver_order", ConfigType::Int, 2},
          {"prediction_type", ConfigType::String, "epsilon"},
          {"thresholding", ConfigType::Bool, false},
          {"dynamic_thresholding_ratio", ConfigType::Float, 0.995},
          {"sample_max_value", ConfigType::Float, 1.0},
          {"algorithm_type", ConfigType::String, "dpmsolver++"},
          {"solver_type", ConfigType::String, "midpoint"},
          {"lower_order_final", ConfigType::Bool, false},
          {"use_karras_sigmas", ConfigType::Bool, false},
          {"final_sigmas_type", ConfigType::String, "zero"},
          {"lambda_min_clipped", ConfigType::Float, -INFINITY},
          {"variance_type", ConfigType::OptionalString, nullptr}};
}

std::unique_ptr<Scheduler> make_dpm_singlestep(SchedulerConfig config) {
  return std::make_unique<DPMSolverSinglestep>(std::move(config));
}

}  // namespace kakusan
