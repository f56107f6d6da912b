// UniPCMultistepScheduler: unified predictor-corrector (Zhao et al. 2023). Each step first corrects the
// sample it is given with the new model output (UniC), then predicts the next one (UniP), with B(h)
// = h ("bh1") or e^h - 1 ("bh2").

#include <algorithm>
#include <cmath>
#include <tuple>

#include "schedulers/sample_ops.h"
#include "schedulers/scheduler_classes.h"
#include "schedulers/solver_base.h"

namespace kakusan {
namespace {

// Solves the small dense system a x = b (Gaussian elimination with partial pivoting).
std::vector<float> solve(std::vector<std::vector<double>> a, std::vector<double> b) {
  const size_t n = b.size();
  for (size_t c = 0; c < n; ++c) {
    size_t pivot = c;
    for (size_t r = c + 1; r < n; ++r)
      if (std::fabs(a[r][c]) > std::fabs(a[pivot][c])) pivot = r;
    std::swap(a[c], a[pivot]);
    std::swap(b[c], b[pivot]);
    for (size_t r = c + 1; r < n; ++r) {
      const double f = a[r][c] / a[c][c];
      for (size_t k = c; k < n; ++k) a[r][k] -= f * a[c][k];
      b[r] -= f * b[c];
    }
  }
  std::vector<float> x(n);
  for (size_t c = n; c-- > 0;) {
    double v = b[c];
    for (size_t k = c + 1; k < n; ++k) v -= a[c][k] * double(x[k]);
    x[c] = float(v / a[c][c]);
  }
  return x;
}

class UniPCMultistep final : public SolverScheduler {
 public:
  explicit UniPCMultistep(SchedulerConfig c) : SolverScheduler(std::move(c)) {
    if (config_.solver_type == "midpoint" || config_.solver_type == "heun" || config_.solver_type == "logrho") {
      config_.solver_type = "bh2";
      config_.json["solver_type"] = "bh2";
    }
    check_choice(class_name(), "solver_type", config_.solver_type, {"bh1", "bh2"});
    check_choice(class_name(), "prediction_type", config_.prediction_type, {"epsilon", "v_prediction", "sample"});
    check_choice(class_name(), "final_sigmas_type", config_.final_sigmas_type, {"zero", "sigma_min"});
    check_choice(class_name(), "timestep_spacing", config_.timestep_spacing, {"linspace", "leading", "trailing"});
  }

  void set_timesteps(int n) override {
    sched::check_num_steps(config_, n);
    std::vector<double> t = sched::solver_timesteps(config_, n, config_.num_train_timesteps);
    std::vector<double> s;
    float final_sigma = 0.0f;
    if (config_.use_karras_sigmas) {
      std::tie(t, s) = karras_schedule(n);
      if (config_.final_sigmas_type == "sigma_min") final_sigma = float(s.back());
    } else {
      s = interpolated_sigmas(t);
      if (config_.final_sigmas_type == "sigma_min") final_sigma = table_.sigma_min();
    }
    install(std::move(t), s, final_sigma);
    last_sample_.reset();
    this_order_ = 0;
  }

 protected:
  Tensor step_impl(const TensorView& model_output, size_t i, const TensorView& sample, NoiseSource&) override {
    sched::check_step_inputs(model_output, sample, class_name());
    const bool disabled = std::find(config_.disable_corrector.begin(), config_.disable_corrector.end(),
                                    int(i) - 1) != config_.disable_corrector.end();
    const bool use_corrector = i > 0 && !disabled && last_sample_.has_value();
    Tensor converted = convert_model_output(model_output, sample, i);
    Tensor x = use_corrector ? corrector(converted, i) : Tensor::copy_of(sample);
    push_output(std::move(converted));
    int order = config_.lower_order_final ? std::min<int>(config_.solver_order, int(timesteps_.size() - i))
                                          : config_.solver_order;
    this_order_ = std::min(order, lower_order_nums_ + 1);
    Tensor prev = predictor(x, i);
    last_sample_ = std::move(x);
    if (lower_order_nums_ < config_.solver_order) ++lower_order_nums_;
    return prev;
  }

 private:
  Tensor convert_model_output(const TensorView& m, const TensorView& x, size_t i) const {
    return config_.predict_x0 ? predicted_x0(m, x, i) : predicted_noise(m, x, i);
  }

  // The shared part of UniP and UniC: h, the phi functions, B(h) and the right-hand side b.
  struct Coefficients {
    float h_phi_1;
    float b_h;
    std::vector<double> b;
  };
  Coefficients coefficients(float h, int order) const {
    const float hh = config_.predict_x0 ? -h : h;
    Coefficients c;
    c.h_phi_1 = std::expm1(hh);
    float h_phi_k = c.h_phi_1 / hh - 1.0f;
    int64_t factorial = 1;
    c.b_h = config_.solver_type == "bh1" ? hh : std::expm1(hh);
    for (int k = 1; k <= order; ++k) {
      c.b.push_back(h_phi_k * float(factorial) / c.b_h);
      factorial *= k + 1;
      h_phi_k = h_phi_k / hh - float(1.0 / double(factorial));
    }
    return c;
  }

  // R[k][j] = rk_j ^ k (rows: powers, columns: the older outputs, then 1).
  static std::vector<std::vector<double>> vandermonde(const std::vector<float>& rks, size_t n) {
    std::vector<std::vector<double>> r(n, std::vector<double>(n));
    for (size_t k = 0; k < n; ++k)
      for (size_t j = 0; j < n; ++j) {
        float v = 1.0f;
        for (size_t p = 0; p < k; ++p) v = v * rks[j];
        r[k][j] = v;
      }
    return r;
  }

  // x_t_ = sigma_t / sigma_s0 * x - alpha_t * h_phi_1 * m0 (data prediction), or the noise form.
  Tensor base_update(const TensorView& x, const AlphaSigma& t, const AlphaSigma& s0, const float* m0,
                     float h_phi_1) const {
    if (config_.predict_x0) return combine(x.shape, {{t.sigma / s0.sigma, x.f32()}, {-(t.alpha * h_phi_1), m0}});
    return combine(x.shape, {{t.alpha / s0.alpha, x.f32()}, {-(t.sigma * h_phi_1), m0}});
  }

  Tensor predictor(const Tensor& x, size_t i) const {
    const int order = this_order_;
    const AlphaSigma t = alpha_sigma(sigmas_[i + 1]), s0 = alpha_sigma(sigmas_[i]);
    const float h = t.lambda - s0.lambda;
    const float* m0 = output(0)->f32();
    std::vector<float> rks;
    std::vector<Tensor> d1s;
    for (int k = 1; k < order; ++k) {
      const float lambda_k = alpha_sigma(sigmas_[i - size_t(k)]).lambda;
      const float rk = (lambda_k - s0.lambda) / h;
      rks.push_back(rk);
      const float* mk = output(size_t(k))->f32();
      d1s.push_back(sched::map_like(x, [&](int64_t e) { return (mk[e] - m0[e]) / rk; }));
    }
    rks.push_back(1.0f);
    const Coefficients c = coefficients(h, order);
    Tensor prev = base_update(x, t, s0, m0, c.h_phi_1);
    if (!d1s.empty()) {
      std::vector<float> rhos;
      if (order == 2) {
        rhos = {0.5f};
      } else {
        std::vector<std::vector<double>> r = vandermonde(rks, size_t(order));
        r.pop_back();
        for (auto& row : r) row.pop_back();
        rhos = solve(r, std::vector<double>(c.b.begin(), c.b.end() - 1));
      }
      const float scale = (config_.predict_x0 ? t.alpha : t.sigma) * c.b_h;
      float* out = prev.f32();
      for (int64_t e = 0; e < x.numel(); ++e) {
        float res = rhos[0] * d1s[0].f32()[e];
        for (size_t k = 1; k < d1s.size(); ++k) res = res + rhos[k] * d1s[k].f32()[e];
        out[e] = out[e] - scale * res;
      }
    }
    return prev;
  }

  Tensor corrector(const Tensor& model_t, size_t i) const {
    const int order = this_order_;
    const AlphaSigma t = alpha_sigma(sigmas_[i]), s0 = alpha_sigma(sigmas_[i - 1]);
    const float h = t.lambda - s0.lambda;
    const float* m0 = output(0)->f32();
    std::vector<float> rks;
    std::vector<Tensor> d1s;
    for (int k = 1; k < order; ++k) {
      const float lambda_k = alpha_sigma(sigmas_[i - size_t(k + 1)]).lambda;
      const float rk = (lambda_k - s0.lambda) / h;
      rks.push_back(rk);
      const float* mk = output(size_t(k))->f32();
      d1s.push_back(sched::map_like(model_t, [&](int64_t e) { return (mk[e] - m0[e]) / rk; }));
    }
    rks.push_back(1.0f);
    const Coefficients c = coefficients(h, order);
    const std::vector<float> rhos = order == 1 ? std::vector<float>{0.5f} : solve(vandermonde(rks, size_t(order)), c.b);
    Tensor x = base_update(last_sample_->view(), t, s0, m0, c.h_phi_1);
    const float scale = (config_.predict_x0 ? t.alpha : t.sigma) * c.b_h;
    const float* mt = model_t.f32();
    float* out = x.f32();
    for (int64_t e = 0; e < model_t.numel(); ++e) {
      float corr = 0.0f;
      for (size_t k = 0; k < d1s.size(); ++k) corr = k == 0 ? rhos[0] * d1s[0].f32()[e] : corr + rhos[k] * d1s[k].f32()[e];
      const float d1_t = mt[e] - m0[e];
      out[e] = out[e] - scale * (corr + rhos.back() * d1_t);
    }
    return x;
  }

  std::optional<Tensor> last_sample_;  // the (corrected) sample the last prediction started from
  int this_order_ = 0;
};

}  // namespace

std::vector<ConfigKey> unipc_config_keys() {
  std::vector<ConfigKey> keys = solver_leading_keys();
  keys.insert(keys.end(), {{"predict_x0", ConfigType::Bool, true},
                           {"solver_type", ConfigType::String, "bh2"},
                           {"lower_order_final", ConfigType::Bool, true},
                           {"disable_corrector", ConfigType::IntList, nlohmann::json::array()},
                           {"solver_p", ConfigType::MustBeNull, nullptr},
                           {"use_karras_sigmas", ConfigType::Bool, false},
                           {"timestep_spacing", ConfigType::String, "linspace"},
                           {"steps_offset", ConfigType::Int, 0},
                           {"final_sigmas_type", ConfigType::String, "zero"},
                           {"rescale_betas_zero_snr", ConfigType::Bool, false}});
  return keys;
}

std::unique_ptr<Scheduler> make_unipc(SchedulerConfig config) {
  return std::make_unique<UniPCMultistep>(std::move(config));
}

}  // namespace kakusan
