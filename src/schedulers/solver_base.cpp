#include "schedulers/solver_base.h"

#include <algorithm>
#include <cmath>

#include "schedulers/sample_ops.h"

namespace kakusan {

SolverScheduler::SolverScheduler(SchedulerConfig config) : Scheduler(std::move(config)) {
  train_ = sched::make_train_schedule(config_, {"linear", "scaled_linear", "squaredcos_cap_v2"});
  if (config_.rescale_betas_zero_snr) sched::pin_zero_terminal_snr(train_);
  table_ = sched::sigma_table(train_.alphas_cumprod);
  KK_CHECK(config_.solver_order >= 1 && config_.solver_order <= 3, class_name(), ": solver_order must be 1, 2 or 3, got ",
           config_.solver_order);
}

SolverScheduler::AlphaSigma SolverScheduler::alpha_sigma(float sigma) {
  const float alpha = 1.0f / std::sqrt(sigma * sigma + 1.0f);
  const float sigma_t = sigma * alpha;
  return {alpha, sigma_t, std::log(alpha) - std::log(sigma_t)};
}

int SolverScheduler::unclipped_timesteps() const {
  // searchsorted(flip(lambda_t), lambda_min_clipped): how many of the smallest lambdas fall below the clip.
  int clipped = 0;
  for (float a : train_.alphas_cumprod) {
    const float lambda = std::log(std::sqrt(a)) - std::log(std::sqrt(1.0f - a));
    if (double(lambda) < config_.lambda_min_clipped) ++clipped;
  }
  return config_.num_train_timesteps - clipped;
}

std::pair<std::vector<double>, std::vector<double>> SolverScheduler::karras_schedule(int n) const {
  double sigma_min = table_.sigma_min(), sigma_max = table_.sigma_max();
  const nlohmann::json& j = config_.json;  // diffusers honours sigma_min / sigma_max kept in the config
  if (j.contains("sigma_min") && j["sigma_min"].is_number()) sigma_min = j["sigma_min"].get<double>();
  if (j.contains("sigma_max") && j["sigma_max"].is_number()) sigma_max = j["sigma_max"].get<double>();
  std::vector<double> sigmas = sched::karras_sigmas(sigma_min, sigma_max, n);
  std::vector<double> timesteps;
  for (double s : sigmas) timesteps.push_back(sched::np_round(sched::sigma_to_t(s, table_.log_sigmas)));
  return {std::move(timesteps), std::move(sigmas)};
}

std::vector<double> SolverScheduler::interpolated_sigmas(const std::vector<double>& timesteps) const {
  std::vector<double> sigmas;
  for (double t : timesteps) sigmas.push_back(sched::np_interp(t, table_.sigmas));
  return sigmas;
}

void SolverScheduler::install(std::vector<double> timesteps, const std::vector<double>& sigmas, float final_sigma) {
  timesteps_ = std::move(timesteps);
  sigmas_.clear();
  for (double s : sigmas) sigmas_.push_back(float(s));
  sigmas_.push_back(final_sigma);
  outputs_.clear();
  outputs_.resize(size_t(config_.solver_order));
  lower_order_nums_ = 0;
  reset_step_order();
}

void SolverScheduler::push_output(Tensor converted) {
  std::rotate(outputs_.begin(), outputs_.begin() + 1, outputs_.end());
  outputs_.back() = std::move(converted);
}

const Tensor* SolverScheduler::output(size_t age) const {
  if (age >= outputs_.size()) return nullptr;
  const std::optional<Tensor>& o = outputs_[outputs_.size() - 1 - age];
  return o ? &*o : nullptr;
}

Tensor SolverScheduler::combine(const Shape& shape, std::initializer_list<Term> terms) {
  Tensor out = Tensor::empty(shape);
  float* o = out.f32();
  const int64_t n = shape.numel();
  for (int64_t k = 0; k < n; ++k) {
    float acc = 0;
    bool first = true;
    for (const Term& t : terms) {
      const float v = t.coeff * t.values[k];
      acc = first ? v : acc + v;
      first = false;
    }
    o[k] = acc;
  }
  return out;
}

Tensor SolverScheduler::dpm_first_order(const TensorView& x, AlphaSigma t, AlphaSigma s, float h, const float* m,
                                        bool data) {
  if (data) return combine(x.shape, {{t.sigma / s.sigma, x.f32()}, {-(t.alpha * (std::exp(-h) - 1.0f)), m}});
  return combine(x.shape, {{t.alpha / s.alpha, x.f32()}, {-(t.sigma * (std::exp(h) - 1.0f)), m}});
}

Tensor SolverScheduler::dpm_second_order(const TensorView& x, AlphaSigma t, AlphaSigma s, float h, const float* m,
                                         const float* d1, bool midpoint, bool data) {
  if (data) {
    const float b = t.alpha * (std::exp(-h) - 1.0f);
    const float c = midpoint ? -(0.5f * b) : t.alpha * ((std::exp(-h) - 1.0f) / h + 1.0f);
    return combine(x.shape, {{t.sigma / s.sigma, x.f32()}, {-b, m}, {c, d1}});
  }
  const float b = t.sigma * (std::exp(h) - 1.0f);
  const float c = midpoint ? -(0.5f * b) : -(t.sigma * ((std::exp(h) - 1.0f) / h - 1.0f));
  return combine(x.shape, {{t.alpha / s.alpha, x.f32()}, {-b, m}, {c, d1}});
}

Tensor SolverScheduler::dpm_third_order(const TensorView& x, AlphaSigma t, AlphaSigma s, float h, const float* m,
                                        const float* d1, const float* d2, bool data) {
  if (data) {
    const float e = std::exp(-h) - 1.0f;
    if (!d2) return combine(x.shape, {{t.sigma / s.sigma, x.f32()}, {-(t.alpha * e), m}, {t.alpha * (e / h + 1.0f), d1}});
    return combine(x.shape, {{t.sigma / s.sigma, x.f32()},
                             {-(t.alpha * e), m},
                             {t.alpha * (e / h + 1.0f), d1},
                             {-(t.alpha * ((std::exp(-h) - 1.0f + h) / (h * h) - 0.5f)), d2}});
  }
  const float e = std::exp(h) - 1.0f;
  if (!d2) return combine(x.shape, {{t.alpha / s.alpha, x.f32()}, {-(t.sigma * e), m}, {-(t.sigma * (e / h - 1.0f)), d1}});
  return combine(x.shape, {{t.alpha / s.alpha, x.f32()},
                           {-(t.sigma * e), m},
                           {-(t.sigma * (e / h - 1.0f)), d1},
                           {-(t.sigma * ((std::exp(h) - 1.0f - h) / (h * h) - 0.5f)), d2}});
}

Tensor SolverScheduler::predicted_x0(const TensorView& model_output, const TensorView& sample, size_t i) const {
  const AlphaSigma s = alpha_sigma(sigmas_[i]);
  Tensor x0 = sched::x0_from_alpha_sigma(model_output, sample, config_, s.alpha, s.sigma);
  if (config_.thresholding) sched::threshold_sample(x0, config_.dynamic_thresholding_ratio, config_.sample_max_value);
  return x0;
}

Tensor SolverScheduler::predicted_noise(const TensorView& model_output, const TensorView& sample, size_t i) const {
  const AlphaSigma s = alpha_sigma(sigmas_[i]);
  const float* m = model_output.f32();
  const float* x = sample.f32();
  if (config_.prediction_type == "epsilon") return Tensor::copy_of(model_output);
  if (config_.prediction_type == "sample")
    return sched::map_like(sample, [&](int64_t k) { return (x[k] - s.alpha * m[k]) / s.sigma; });
  return sched::map_like(sample, [&](int64_t k) { return s.alpha * m[k] + s.sigma * x[k]; });
}

Tensor SolverScheduler::noise_from_x0(const TensorView& x0, const TensorView& sample, AlphaSigma s) {
  const float* p = x0.f32();
  const float* x = sample.f32();
  return sched::map_like(sample, [&](int64_t k) { return (x[k] - s.alpha * p[k]) / s.sigma; });
}

std::optional<std::vector<double>> SolverScheduler::sigmas() const {
  return std::vector<double>(sigmas_.begin(), sigmas_.end());
}

Tensor SolverScheduler::add_noise(const TensorView& original, const TensorView& noise, double timestep) const {
  // diffusers' index_for_timestep of the solvers: the last step when absent, the second match when repeated.
  size_t index = timesteps_.empty() ? 0 : timesteps_.size() - 1;
  std::vector<size_t> hits;
  for (size_t i = 0; i < timesteps_.size(); ++i)
    if (timesteps_[i] == timestep) hits.push_back(i);
  if (!hits.empty()) index = hits.size() > 1 ? hits[1] : hits[0];
  return noised(original, noise, index);
}

Tensor SolverScheduler::add_noise_at_step(const TensorView& original, const TensorView& noise,
                                          size_t step_index) const {
  KK_CHECK(step_index < timesteps_.size(), class_name(), ": add_noise step_index ", step_index,
           " is past the last of ", timesteps_.size(), " timesteps");
  return noised(original, noise, step_index);
}

Tensor SolverScheduler::noised(const TensorView& original, const TensorView& noise, size_t sigma_index) const {
  KK_CHECK(!sigmas_.empty(), class_name(), ": call set_timesteps before add_noise");
  const AlphaSigma as = alpha_sigma(sigmas_[sigma_index]);
  const float* x = sched::dense_f32(original, class_name(), "original sample");
  const float* z = sched::dense_f32(noise, class_name(), "noise");
  KK_CHECK(original.shape == noise.shape, class_name(), ": noise shape ", noise.shape, " differs from sample shape ",
           original.shape);
  return sched::map_like(original, [&](int64_t k) { return as.alpha * x[k] + as.sigma * z[k]; });
}

}  // namespace kakusan
