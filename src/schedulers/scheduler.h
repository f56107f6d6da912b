// The scheduler contract: one interface for the 13 diffusers schedulers Stable Diffusion can swap in
// (XScheduler.from_config(pipe.scheduler.config)).
//
//   auto sched = make_scheduler("DPM++ 2M Karras", JsonConfig::load(dir / "scheduler/scheduler_config.json"));
//   sched->set_timesteps(20);
//   latents *= sched->init_noise_sigma();
//   for (size_t i = 0; i < sched->timesteps().size(); ++i) {
//     Tensor x_in = latents.clone();
//     sched->scale_model_input(x_in, i);
//     Tensor eps = unet(x_in, sched->timesteps()[i]);
//     latents = sched->step(eps, i, latents, generator);
//   }
//
// Every class mirrors diffusers v0.29.2: the same timesteps and sigma tables (with numpy's float64 math on
// torch's float32 tables), the same internal state machine (PNDM's ets, DPM-Solver's model_outputs, Heun's
// first/second-order half steps) and the same random draws from the caller's generator.
#pragma once

#include <limits>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/generator.h"
#include "core/tensor.h"
#include "io/json_config.h"

namespace kakusan {

// The effective configuration of a scheduler (diffusers' `scheduler.config`), typed. The fields are the
// union of every class's __init__ arguments, with diffusers' names; a class reads only its own fields, and
// `json` holds exactly what diffusers' config holds (the class's keys plus the source keys kept for
// compatible classes).
struct SchedulerConfig {
  std::string class_name;
  int num_train_timesteps = 1000;
  double beta_start = 0.0001;
  double beta_end = 0.02;
  std::string beta_schedule = "linear";
  std::optional<std::vector<double>> trained_betas;
  std::string prediction_type = "epsilon";
  std::string timestep_spacing = "leading";
  int steps_offset = 0;
  bool rescale_betas_zero_snr = false;
  // Clipping of the predicted x0.
  bool clip_sample = false;
  double clip_sample_range = 1.0;
  bool thresholding = false;
  double dynamic_thresholding_ratio = 0.995;
  double sample_max_value = 1.0;
  // DDIM / PNDM / DDPM.
  bool set_alpha_to_one = false;
  bool skip_prk_steps = false;
  std::string variance_type;  // "" = None
  // Sigma schedules.
  bool use_karras_sigmas = false;
  bool use_lu_lambdas = false;
  std::string interpolation_type = "linear";
  std::optional<double> sigma_min;
  std::optional<double> sigma_max;
  std::string timestep_type = "discrete";
  std::string final_sigmas_type = "zero";
  // Multistep solvers (DPM-Solver, DEIS, UniPC).
  int solver_order = 2;
  std::string algorithm_type;
  std::string solver_type;
  bool lower_order_final = true;
  bool euler_at_final = false;
  double lambda_min_clipped = -std::numeric_limits<double>::infinity();
  bool predict_x0 = true;
  std::vector<int> disable_corrector;

  nlohmann::json json;
};

// Where stochastic steps draw their noise: one generator for the whole batch (torch.randn(shape,
// generator=g)), or one per sample (diffusers' generator list: sample i draws a (1, ...) tensor from
// generator i; entries may repeat the same object).
class NoiseSource {
 public:
  explicit NoiseSource(Generator& generator) : generators_{&generator}, per_sample_(false) {}
  explicit NoiseSource(std::span<Generator* const> per_sample)
      : generators_(per_sample.begin(), per_sample.end()), per_sample_(true) {}
  Tensor randn(const Shape& shape);

 private:
  std::vector<Generator*> generators_;
  bool per_sample_;
};

class Scheduler {
 public:
  virtual ~Scheduler() = default;

  virtual void set_timesteps(int num_inference_steps) = 0;
  // The model's t for each UNet call (fractional for Karras/KDPM2 schedules; whole numbers for the
  // integer schedulers, which `integer_timesteps()` reports).
  const std::vector<double>& timesteps() const { return timesteps_; }
  bool integer_timesteps() const { return integer_timesteps_; }
  // The sigma table (diffusers' scheduler.sigmas) where the algorithm has one.
  virtual std::optional<std::vector<double>> sigmas() const { return std::nullopt; }
  // The scale of the initial noise (after set_timesteps: the Euler family's depends on the schedule).
  virtual double init_noise_sigma() const { return 1.0; }
  // Scales the UNet input in place for the step_index-th timestep (a no-op for most schedulers). Call it
  // right before step(step_index): the two-stage KDPM2 schedulers scale by the half step they are in.
  virtual void scale_model_input(TensorView sample, size_t step_index) const;
  // Advances one step: given the model output at timesteps()[step_index], returns the previous sample.
  // Steps must be taken in order after set_timesteps (the first may start later, as img2img does).
  Tensor step(const TensorView& model_output, size_t step_index, const TensorView& sample, Generator& generator);
  // The same with one generator per sample (diffusers' list of generators).
  Tensor step(const TensorView& model_output, size_t step_index, const TensorView& sample,
              std::span<Generator* const> generators);
  // diffusers' `scheduler.order` (2 for Heun/KDPM2, 1 otherwise).
  virtual int order() const { return 1; }
  // `original` noised to `timestep` (one of timesteps() for the sigma schedulers, a training timestep for
  // DDIM/DDPM/PNDM), as img2img does: the forward process of this scheduler.
  virtual Tensor add_noise(const TensorView& original, const TensorView& noise, double timestep) const = 0;
  // add_noise as the pipelines call it once the scheduler's index is known: img2img before its first step
  // (diffusers' set_begin_index(first_step)), inpainting after step i (step_index i + 1). The sigma schedulers
  // then noise with sigmas[step_index], as diffusers does with a begin or step index (no timestep lookup, which
  // differs where timesteps repeat); the others noise to timesteps()[step_index].
  virtual Tensor add_noise_at_step(const TensorView& original, const TensorView& noise, size_t step_index) const;
  // DDIM's `eta` (a step argument in diffusers); schedulers without one ignore it.
  virtual void set_eta(double /*eta*/) {}

  const SchedulerConfig& config() const { return config_; }
  const std::string& class_name() const { return config_.class_name; }

 protected:
  explicit Scheduler(SchedulerConfig config) : config_(std::move(config)) {}
  virtual Tensor step_impl(const TensorView& model_output, size_t step_index, const TensorView& sample,
                           NoiseSource& noise) = 0;
  // Clears the step-order bookkeeping; call from set_timesteps.
  void reset_step_order() { next_step_.reset(); }

  SchedulerConfig config_;
  std::vector<double> timesteps_;
  bool integer_timesteps_ = true;

 private:
  Tensor checked_step(const TensorView& model_output, size_t step_index, const TensorView& sample,
                      NoiseSource& noise);
  std::optional<size_t> next_step_;
};

// XScheduler.from_config(source_config, **options): `class_name_or_alias` is a diffusers class name or an
// alias (case-insensitive, see scheduler_aliases()); `options` are key=value overrides typed by the key
// ("use_karras_sigmas" = "true"). Unknown keys, badly typed values and unsupported values throw Error.
std::unique_ptr<Scheduler> make_scheduler(const std::string& class_name_or_alias, const JsonConfig& source_config,
                                          const std::map<std::string, std::string>& options = {});

struct SchedulerAlias {
  std::string alias;       // "dpm++2m_karras"
  std::string class_name;  // "DPMSolverMultistepScheduler"
  std::map<std::string, std::string> options;  // {"use_karras_sigmas": "true"}
};
// Every accepted name: the class names themselves and the A1111 / stable-diffusion.cpp aliases.
std::vector<SchedulerAlias> scheduler_aliases();

}  // namespace kakusan
