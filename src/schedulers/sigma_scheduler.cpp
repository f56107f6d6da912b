#include "schedulers/sigma_scheduler.h"

#include <algorithm>
#include <cmath>

#include "schedulers/sample_ops.h"

namespace kakusan {

SigmaScheduler::SigmaScheduler(SchedulerConfig config, std::initializer_list<const char*> beta_schedules)
    : Scheduler(std::move(config)) {
  train_ = sched::make_train_schedule(config_, beta_schedules);
  table_ = sched::sigma_table(train_.alphas_cumprod);
  integer_timesteps_ = false;
}

std::vector<float> SigmaScheduler::to_f32(const std::vector<double>& v) {
  std::vector<float> out(v.size());
  std::transform(v.begin(), v.end(), out.begin(), [](double x) { return float(x); });
  return out;
}

std::vector<float> SigmaScheduler::repeat_for_two_stages(const std::vector<float>& a) {
  std::vector<float> out(1, a.front());
  for (size_t k = 1; k < a.size(); ++k) out.insert(out.end(), 2, a[k]);
  out.push_back(a.back());
  return out;
}

void SigmaScheduler::pin_zero_terminal_snr() {
  sched::pin_zero_terminal_snr(train_);
  table_ = sched::sigma_table(train_.alphas_cumprod);
}

SigmaScheduler::TwoStageSchedule SigmaScheduler::two_stage_schedule(int n) const {
  Schedule s = interpolated_schedule(n, /*config_limits=*/true);
  if (config_.use_karras_sigmas)
    for (double& t : s.timesteps) t = sched::np_round(t);
  std::vector<float> sigmas = to_f32(s.sigmas);
  sigmas.push_back(0.0f);
  return {std::move(s.timesteps), std::move(sigmas)};
}

std::vector<double> SigmaScheduler::two_stage_timesteps(const std::vector<double>& timesteps,
                                                        const std::vector<float>& mid) const {
  auto cast = [&](double t) { return config_.use_karras_sigmas ? t : sched::f32(t); };
  std::vector<double> out(1, cast(timesteps.front()));
  for (size_t k = 1; k < timesteps.size(); ++k) {
    out.push_back(cast(sched::sigma_to_t(mid.at(k - 1), table_.log_sigmas)));
    out.push_back(cast(timesteps[k]));
  }
  return out;
}

float SigmaScheduler::geometric_midpoint(float a, float b) {
  const float self = std::log(a), end = std::log(b);
  // torch.lerp with weight >= 0.5 evaluates end - (end - self) * (1 - weight).
  return std::exp(end - (end - self) * (1.0f - 0.5f));
}

SigmaScheduler::Schedule SigmaScheduler::interpolated_schedule(int n, bool config_limits) const {
  sched::check_num_steps(config_, n);
  Schedule s;
  s.timesteps = sched::spaced_timesteps(config_, n, /*round_linspace=*/false);
  for (double t : s.timesteps) s.sigmas.push_back(sched::np_interp(t, table_.sigmas));
  if (config_.use_karras_sigmas) {
    double sigma_min = s.sigmas.back(), sigma_max = s.sigmas.front();
    if (config_limits) {
      // diffusers reads config.sigma_min / sigma_max when the config has them (own or kept keys).
      const nlohmann::json& j = config_.json;
      if (j.contains("sigma_min") && j["sigma_min"].is_number()) sigma_min = j["sigma_min"].get<double>();
      if (j.contains("sigma_max") && j["sigma_max"].is_number()) sigma_max = j["sigma_max"].get<double>();
    }
    s.sigmas = sched::karras_sigmas(sigma_min, sigma_max, n);
    s.timesteps.clear();
    for (double sigma : s.sigmas) s.timesteps.push_back(sched::sigma_to_t(sigma, table_.log_sigmas));
  }
  return s;
}

std::optional<std::vector<double>> SigmaScheduler::sigmas() const {
  return std::vector<double>(sigmas_.begin(), sigmas_.end());
}

double SigmaScheduler::init_noise_sigma() const {
  if (sigmas_.empty()) return 1.0;
  const float max_sigma = *std::max_element(sigmas_.begin(), sigmas_.end());
  if (config_.timestep_spacing == "linspace" || config_.timestep_spacing == "trailing") return max_sigma;
  return std::sqrt(max_sigma * max_sigma + 1.0f);
}

void SigmaScheduler::scale_model_input(TensorView sample, size_t step_index) const {
  KK_CHECK(step_index < timesteps_.size(), class_name(), ": scale_model_input step_index ", step_index,
           " is past the last of ", timesteps_.size(), " timesteps");
  const float sigma = input_sigma(step_index);
  const float denom = std::sqrt(sigma * sigma + 1.0f);
  float* x = const_cast<float*>(sched::dense_f32(sample, class_name(), "sample"));
  for (int64_t i = 0; i < sample.numel(); ++i) x[i] = x[i] / denom;
}

Tensor SigmaScheduler::add_noise(const TensorView& original, const TensorView& noise, double timestep) const {
  const size_t index = sched::index_for_timestep(timesteps_, timestep, class_name());
  return sched::add_noise_ve(original, noise, sigmas_.at(index), class_name());
}

Tensor SigmaScheduler::add_noise_at_step(const TensorView& original, const TensorView& noise,
                                         size_t step_index) const {
  KK_CHECK(step_index < timesteps_.size(), class_name(), ": add_noise step_index ", step_index,
           " is past the last of ", timesteps_.size(), " timesteps");
  return sched::add_noise_ve(original, noise, sigmas_.at(step_index), class_name());
}

}  // namespace kakusan
