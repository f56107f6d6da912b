// The base of the exponential-integrator solvers on the variance-preserving ODE (DPM-Solver multistep and
// singlestep, DEIS, UniPC): integer timesteps, a float32 sigma per step (plus a final one), alpha_t and
// sigma_t derived from it, and a short history of converted model outputs.
#pragma once

#include <initializer_list>
#include <optional>
#include <utility>
#include <vector>

#include "schedulers/schedule_math.h"
#include "schedulers/scheduler.h"

namespace kakusan {

class SolverScheduler : public Scheduler {
 public:
  std::optional<std::vector<double>> sigmas() const override;
  Tensor add_noise(const TensorView& original, const TensorView& noise, double timestep) const override;
  Tensor add_noise_at_step(const TensorView& original, const TensorView& noise, size_t step_index) const override;

 protected:
  SolverScheduler(SchedulerConfig config);

  // alpha_t = 1 / sqrt(sigma^2 + 1), sigma_t = sigma * alpha_t and lambda = log(alpha_t) - log(sigma_t).
  struct AlphaSigma {
    float alpha;
    float sigma;
    float lambda;
  };
  static AlphaSigma alpha_sigma(float sigma);
  // alpha(sigma) * original + sigma_t(sigma) * noise with sigmas_[sigma_index].
  Tensor noised(const TensorView& original, const TensorView& noise, size_t sigma_index) const;
  // The first training timestep not removed by lambda_min_clipped (diffusers' last_timestep).
  int unclipped_timesteps() const;
  // Karras sigmas over the whole training range (or the config's sigma_min / sigma_max) and their
  // rounded timesteps.
  std::pair<std::vector<double>, std::vector<double>> karras_schedule(int n) const;
  // Interpolated sigmas at the given timesteps.
  std::vector<double> interpolated_sigmas(const std::vector<double>& timesteps) const;
  // Stores timesteps and sigmas (float32, `final_sigma` appended) and clears the solver history.
  void install(std::vector<double> timesteps, const std::vector<double>& sigmas, float final_sigma);
  // Pushes a converted model output into the history (the oldest falls out); output(0) is the newest.
  void push_output(Tensor converted);
  const Tensor* output(size_t age) const;

  // A float32 linear combination sum_j coeff_j * v_j, evaluated left to right with every product and sum
  // rounded on its own, as the torch expressions of the updates are.
  struct Term {
    float coeff;
    const float* values;
  };
  static Tensor combine(const Shape& shape, std::initializer_list<Term> terms);

  // The deterministic DPM-Solver updates from the sample x at s to t (h = lambda_t - lambda_s), shared by
  // the multistep and singlestep solvers: DPM-Solver++ (data prediction) when `data`, else DPM-Solver (noise
  // prediction). m is the converted model output at s; d1 / d2 its first / second scaled differences.
  static Tensor dpm_first_order(const TensorView& x, AlphaSigma t, AlphaSigma s, float h, const float* m, bool data);
  static Tensor dpm_second_order(const TensorView& x, AlphaSigma t, AlphaSigma s, float h, const float* m,
                                 const float* d1, bool midpoint, bool data);
  // Without d2 (nullptr) the update stops after the d1 term, as the singlestep midpoint form does.
  static Tensor dpm_third_order(const TensorView& x, AlphaSigma t, AlphaSigma s, float h, const float* m,
                                const float* d1, const float* d2, bool data);

  // diffusers' convert_model_output, the parts every solver shares. The predicted x0 at step i from any
  // prediction_type, dynamically thresholded when the config asks (what the data-prediction solvers keep).
  Tensor predicted_x0(const TensorView& model_output, const TensorView& sample, size_t i) const;
  // The predicted noise at step i from any prediction_type, not thresholded (the noise-prediction solvers).
  Tensor predicted_noise(const TensorView& model_output, const TensorView& sample, size_t i) const;
  // The noise implied by an x0: (x - alpha * x0) / sigma.
  static Tensor noise_from_x0(const TensorView& x0, const TensorView& sample, AlphaSigma s);

  sched::TrainSchedule train_;
  sched::SigmaTable table_;       // sigma per training timestep and its log (float32)
  std::vector<float> sigmas_;     // per step, plus the final sigma
  std::vector<std::optional<Tensor>> outputs_;  // the last solver_order converted outputs, oldest first
  int lower_order_nums_ = 0;
};

}  // namespace kakusan
