// DPMSolverSinglestepScheduler: singlestep DPM-Solver / DPM-Solver++ (Lu et al. 2022). Steps are grouped
// by the order list (1, 2, 1, 2, ... for order 2): a group starts from the sample of its first step and
// reuses the model outputs collected inside the group.

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
    install(std::move(t), s, config_.final_sigmas_type == "sigma_min" ? table_.sigma_min() : 0.0f);
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

  bool plus_plus() const { return config_.algorithm_type == "dpmsolver++"; }

  Tensor convert_model_output(const TensorView& m, const TensorView& x, size_t i) const {
    return plus_plus() ? predicted_x0(m, x, i) : predicted_noise(m, x, i);
  }

  Tensor first_order(const TensorView& x, size_t i) const {
    const AlphaSigma t = alpha_sigma(sigmas_[i + 1]), s = alpha_sigma(sigmas_[i]);
    const float h = t.lambda - s.lambda;
    const float* m = output(0)->f32();
    return dpm_first_order(x, t, s, h, m, plus_plus());
  }

  Tensor second_order(const TensorView& x, size_t i) const {
    const AlphaSigma t = alpha_sigma(sigmas_[i + 1]), s0 = alpha_sigma(sigmas_[i]), s1 = alpha_sigma(sigmas_[i - 1]);
    const float h = t.lambda - s1.lambda, h0 = s0.lambda - s1.lambda;
    const float r0 = h0 / h;
    const float* m0 = output(0)->f32();
    const float* m1 = output(1)->f32();
    const float inv_r0 = 1.0f / r0;
    const Tensor d1 = sched::map_like(x, [&](int64_t k) { return inv_r0 * (m0[k] - m1[k]); });
    return dpm_second_order(x, t, s1, h, m1, d1.f32(), config_.solver_type == "midpoint", plus_plus());
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
    // The midpoint form steps with the second difference alone (diffusers' D1_1), without a D2 term.
    if (config_.solver_type == "midpoint") return dpm_third_order(x, t, s2, h, m2, b, nullptr, plus_plus());
    return dpm_third_order(x, t, s2, h, m2, d1.f32(), d2.f32(), plus_plus());
  }

  std::vector<int> order_list_;
  std::optional<Tensor> start_sample_;  // the sample at the start of the current group of steps
};

}  // namespace

std::vector<ConfigKey> dpm_singlestep_config_keys() {
  std::vector<ConfigKey> keys = solver_leading_keys();
  keys.insert(keys.end(), {{"algorithm_type", ConfigType::String, "dpmsolver++"},
                           {"solver_type", ConfigType::String, "midpoint"},
                           {"lower_order_final", ConfigType::Bool, false},
                           {"use_karras_sigmas", ConfigType::Bool, false},
                           {"final_sigmas_type", ConfigType::String, "zero"},
                           {"lambda_min_clipped", ConfigType::Float, -INFINITY},
                           {"variance_type", ConfigType::OptionalString, nullptr}});
  return keys;
}

std::unique_ptr<Scheduler> make_dpm_singlestep(SchedulerConfig config) {
  return std::make_unique<DPMSolverSinglestep>(std::move(config));
}

}  // namespace kakusan
