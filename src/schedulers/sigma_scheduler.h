// The base of the Karras-style ("variance exploding") schedulers, LMS / Euler / Euler ancestral / Heun /
// KDPM2 / KDPM2 ancestral: a float32 sigma per step, model inputs scaled by 1 / sqrt(sigma^2 + 1), and an
// initial noise of sigma_max (sqrt(sigma_max^2 + 1) with "leading" spacing).
#pragma once

#include <initializer_list>
#include <optional>
#include <vector>

#include "schedulers/schedule_math.h"
#include "schedulers/scheduler.h"

namespace kakusan {

class SigmaScheduler : public Scheduler {
 public:
  std::optional<std::vector<double>> sigmas() const override;
  double init_noise_sigma() const override;
  void scale_model_input(TensorView sample, size_t step_index) const override;
  Tensor add_noise(const TensorView& original, const TensorView& noise, double timestep) const override;
  Tensor add_noise_at_step(const TensorView& original, const TensorView& noise, size_t step_index) const override;

 protected:
  SigmaScheduler(SchedulerConfig config, std::initializer_list<const char*> beta_schedules);

  struct Schedule {
    std::vector<double> timesteps;  // descending, as float32 values unless Karras replaced them
    std::vector<double> sigmas;     // float64, one per timestep (no final sigma yet)
  };
  // With rescale_betas_zero_snr the last sigma would be infinite; diffusers pins alphas_cumprod[-1] to 2^-24
  // and the sigma tables follow (Euler, Euler ancestral).
  void pin_zero_terminal_snr();
  // The spaced timesteps and their np.interp'ed sigmas; with use_karras_sigmas the sigmas are replaced by
  // the Karras ramp between the ends (or the config's sigma_min / sigma_max when `config_limits`) and the
  // timesteps by sigma_to_t of each.
  Schedule interpolated_schedule(int n, bool config_limits) const;
  // The sigma scale_model_input uses for this step (KDPM2 uses its interpolated sigmas on odd steps).
  virtual float input_sigma(size_t step_index) const { return sigmas_.at(step_index); }
  static std::vector<float> to_f32(const std::vector<double>& v);
  // torch.cat([a[:1], a[1:].repeat_interleave(2), a[-1:]]): the per-call table of the two-stage KDPM2
  // schedulers, [a0, a1, a1, ..., aN, aN, aN].
  static std::vector<float> repeat_for_two_stages(const std::vector<float>& a);
  // The start of the two-stage KDPM2 schedules: interpolated_schedule within the config's limits, Karras
  // timesteps rounded, and the float32 sigmas with the final 0 appended.
  struct TwoStageSchedule {
    std::vector<double> timesteps;
    std::vector<float> sigmas;  // one per timestep, then 0
  };
  TwoStageSchedule two_stage_schedule(int n) const;
  // The per-call timesteps of the KDPM2 schedulers, [t0, t(mid[0]), t1, t(mid[1]), t2, ...]: the timestep of
  // midpoint sigma mid[k - 1] comes before schedule timestep k (float32 values unless Karras).
  std::vector<double> two_stage_timesteps(const std::vector<double>& timesteps, const std::vector<float>& mid) const;
  // exp(lerp(log a, log b, 0.5)) in float32, as torch evaluates it (NaN where both logs are -inf).
  static float geometric_midpoint(float a, float b);

  sched::TrainSchedule train_;
  sched::SigmaTable table_;       // sigma per training timestep and its log (float32)
  std::vector<float> sigmas_;     // the current schedule's sigmas (float32), as diffusers' scheduler.sigmas
};

}  // namespace kakusan
