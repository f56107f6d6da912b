// The math every scheduler shares, written once: training noise schedules, timestep spacing, sigma tables
// and Karras sigmas.
//
// diffusers computes these with a deliberate mix of precisions that a port must copy to get the same
// timesteps: the training schedule lives in torch float32 (betas from torch.linspace, a cumprod that
// accumulates in double and rounds every entry to float32), the sigma table is computed from it in
// float32, and numpy then interpolates / ramps in float64 (np.linspace, np.interp, np.round with
// round-half-to-even) before casting back to float32. The helpers below reproduce each of those steps.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "schedulers/scheduler.h"

namespace kakusan::sched {

// ---- numpy float64 building blocks -------------------------------------------------------------------
// np.linspace(start, stop, num): start + i * step, the last entry exactly `stop`.
std::vector<double> np_linspace(double start, double stop, int64_t num);
// np.arange(start, stop, step) for a float step: start + i * ((start + step) - start).
std::vector<double> np_arange(double start, double stop, double step);
// np.round: half to even.
double np_round(double x);
// np.interp(x, arange(len(fp)), fp) with fp a float32 table, evaluated in float64.
double np_interp(double x, const std::vector<float>& fp);

// ---- training schedule (torch float32) ---------------------------------------------------------------
struct TrainSchedule {
  std::vector<float> betas;
  std::vector<float> alphas;
  std::vector<float> alphas_cumprod;
};
// betas from the config (trained_betas or beta_schedule; `allowed` lists the schedules the class accepts,
// as each diffusers class accepts a slightly different set), optionally rescaled to zero terminal SNR.
TrainSchedule make_train_schedule(const SchedulerConfig& config, std::initializer_list<const char*> allowed);
// torch.linspace(start, end, steps, dtype=float32), including its vectorised two-ended evaluation.
std::vector<float> torch_linspace_f32(double start, double end, int64_t steps);

// ---- sigmas -----------------------------------------------------------------------------------------
// The sigma of every training timestep and its log, as the sigma-based schedulers (the Karras-style ones and
// the exponential-integrator solvers) keep them: diffusers' sigmas before set_timesteps and log_sigmas.
struct SigmaTable {
  std::vector<float> sigmas;      // ((1 - alphas_cumprod) / alphas_cumprod) ** 0.5 in float32, ascending
  std::vector<float> log_sigmas;  // np.log of each (float32)
  float sigma_min() const { return sigmas.front(); }
  float sigma_max() const { return sigmas.back(); }
};
SigmaTable sigma_table(const std::vector<float>& alphas_cumprod);
// rescale_betas_zero_snr leaves alphas_cumprod[-1] = 0, an infinite last sigma: diffusers' sigma-based
// schedulers pin it to 2^-24 before building their tables.
void pin_zero_terminal_snr(TrainSchedule& train);
// Karras et al. (2022) rho=7 ramp from sigma_max down to sigma_min, n entries (float64).
std::vector<double> karras_sigmas(double sigma_min, double sigma_max, int64_t n);
// The fractional training timestep of `sigma`, by linear interpolation of log-sigma (diffusers'
// _sigma_to_t, including its float32 intermediate steps).
double sigma_to_t(double sigma, const std::vector<float>& log_sigmas);
// The value after a float32 round trip (numpy .astype(np.float32)).
inline double f32(double x) { return double(float(x)); }

// ---- timestep spacing -------------------------------------------------------------------------------
// DDIM / DDPM / Euler-family spacing (descending): "linspace" np.linspace(0, T-1, n) (rounded when
// `round_linspace`), "leading" arange(n) * (T // n) + steps_offset, "trailing" round(arange(T, 0, -T/n)) - 1.
std::vector<double> spaced_timesteps(const SchedulerConfig& config, int n, bool round_linspace);
// The DDIM / DDPM schedule: spaced_timesteps (linspace rounded) after checking that n is usable and at
// most num_train_timesteps, and that every timestep indexes the training schedule.
std::vector<double> alpha_indexed_timesteps(const SchedulerConfig& config, int n, const std::string& class_name);
// DPM-Solver / DEIS / UniPC spacing (descending, n entries): "linspace" round(linspace(0, last-1, n+1))
// without its final 0, "leading" arange(n+1) * (last // (n+1)) without its final 0 plus steps_offset,
// "trailing" round(arange(last, 0, -T/n)) - 1. `last` is the first training timestep not clipped.
std::vector<double> solver_timesteps(const SchedulerConfig& config, int n, int last);

// Error unless n is a usable number of inference steps for this class.
void check_num_steps(const SchedulerConfig& config, int n);
// Error unless every timestep indexes the training schedule (the alpha-indexed schedulers need that).
void check_training_range(const SchedulerConfig& config, const std::vector<double>& timesteps);
// Larger training schedules are refused (diffusers models use 1000).
inline constexpr int kMaxTrainTimesteps = 1'000'000;

}  // namespace kakusan::sched
