// Exact reproduction of numpy / torch rounding needs every product and sum rounded on its own, as numpy and
// torch's elementwise kernels do: no fused multiply-add (the module builds with -ffp-contract=off).

#include "schedulers/schedule_math.h"

#include <algorithm>
#include <cmath>

#include "schedulers/scheduler_config.h"

namespace kakusan::sched {

std::vector<double> np_linspace(double start, double stop, int64_t num) {
  std::vector<double> y(size_t(std::max<int64_t>(num, 0)));
  if (num <= 0) return y;
  const int64_t div = num - 1;
  const double delta = stop - start;
  if (div > 0) {
    const double step = delta / double(div);
    for (int64_t i = 0; i < num; ++i) y[size_t(i)] = (step == 0 ? double(i) / double(div) * delta : double(i) * step) + start;
    y.back() = stop;
  } else {
    y[0] = 0.0 * delta + start;
  }
  return y;
}

std::vector<double> np_arange(double start, double stop, double step) {
  const double len = std::ceil((stop - start) / step);
  std::vector<double> y;
  if (!(len > 0)) return y;
  y.resize(size_t(len));
  y[0] = start;
  if (y.size() > 1) y[1] = start + step;
  const double delta = y.size() > 1 ? y[1] - start : step;
  for (size_t i = 2; i < y.size(); ++i) y[i] = start + double(i) * delta;
  return y;
}

double np_round(double x) { return std::nearbyint(x); }  // default rounding mode: half to even

double np_interp(double x, const std::vector<float>& fp) {
  const int64_t n = int64_t(fp.size());
  if (std::isnan(x)) return x;
  if (x < 0) return fp.front();
  if (x >= double(n - 1)) return fp.back();
  const int64_t j = int64_t(std::floor(x));
  if (double(j) == x) return fp[size_t(j)];
  const double slope = (double(fp[size_t(j + 1)]) - double(fp[size_t(j)])) / 1.0;
  return slope * (x - double(j)) + double(fp[size_t(j)]);
}

std::vector<float> torch_linspace_f32(double start_d, double end_d, int64_t steps) {
  std::vector<float> out(static_cast<size_t>(steps));
  const float start = float(start_d), end = float(end_d);
  if (steps == 1) out[0] = start;
  if (steps <= 1) return out;
  const float step = (end - start) / float(steps - 1);
  const int64_t halfway = steps / 2;
  // torch evaluates from whichever end is nearer, with a fused multiply-add (its AVX2 kernels are built
  // with FMA contraction), in 8-wide vectors base + k * step; the tail that does not fill two vectors is
  // evaluated one element at a time. This reproduces its float32 betas bit for bit.
  auto from_nearer_end = [&](int64_t i) {
    return i < halfway ? std::fma(step, float(i), start) : std::fma(-step, float(steps - i - 1), end);
  };
  constexpr int64_t kVec = 8;
  int64_t i = 0;
  for (; i + 2 * kVec <= steps; i += kVec) {
    const float base = from_nearer_end(i);
    for (int64_t k = 0; k < kVec; ++k) out[size_t(i + k)] = k == 0 ? base : base + float(k) * step;
  }
  for (; i < steps; ++i) out[size_t(i)] = from_nearer_end(i);
  return out;
}

namespace {

// diffusers' betas_for_alpha_bar: betas from a continuous alpha_bar(t), in float64, capped at 0.999.
std::vector<float> betas_for_alpha_bar(int64_t n, bool cosine) {
  auto alpha_bar = [&](double t) {
    if (cosine) {
      const double c = std::cos((t + 0.008) / 1.008 * M_PI / 2);
      return c * c;
    }
    return std::exp(t * -12.0);
  };
  std::vector<float> betas(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const double t1 = double(i) / double(n), t2 = double(i + 1) / double(n);
    betas[size_t(i)] = float(std::min(1 - alpha_bar(t2) / alpha_bar(t1), 0.999));
  }
  return betas;
}

// torch.cumprod on float32 accumulates in double and rounds each partial product to float32.
std::vector<float> cumprod(const std::vector<float>& x) {
  std::vector<float> out(x.size());
  double acc = 1.0;
  for (size_t i = 0; i < x.size(); ++i) out[i] = float(acc *= double(x[i]));
  return out;
}

std::vector<float> one_minus(const std::vector<float>& x) {
  std::vector<float> out(x.size());
  for (size_t i = 0; i < x.size(); ++i) out[i] = 1.0f - x[i];
  return out;
}

// Lin et al. 2023, "Common Diffusion Noise Schedules and Sample Steps are Flawed", algorithm 1.
std::vector<float> rescale_zero_terminal_snr(const std::vector<float>& betas) {
  std::vector<float> s = cumprod(one_minus(betas));
  for (float& v : s) v = std::sqrt(v);
  const float s0 = s.front(), sT = s.back();
  for (float& v : s) v -= sT;
  const float scale = s0 / (s0 - sT);
  for (float& v : s) v *= scale;
  std::vector<float> alphas(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    const float bar = s[i] * s[i];
    alphas[i] = i == 0 ? bar : bar / (s[i - 1] * s[i - 1]);
  }
  return one_minus(alphas);
}

}  // namespace

TrainSchedule make_train_schedule(const SchedulerConfig& c, std::initializer_list<const char*> allowed) {
  const int64_t n = c.num_train_timesteps;
  KK_CHECK(n >= 2 && n <= kMaxTrainTimesteps, c.class_name, ": num_train_timesteps must be in [2, ",
           kMaxTrainTimesteps, "], got ", n);
  TrainSchedule s;
  if (c.trained_betas) {
    KK_CHECK(int64_t(c.trained_betas->size()) == n, c.class_name, ": trained_betas has ", c.trained_betas->size(),
             " entries but num_train_timesteps is ", n);
    for (double b : *c.trained_betas) s.betas.push_back(float(b));
  } else {
    check_choice(c.class_name, "beta_schedule", c.beta_schedule, allowed);
    if (c.beta_schedule == "linear") {
      s.betas = torch_linspace_f32(c.beta_start, c.beta_end, n);
    } else if (c.beta_schedule == "scaled_linear") {
      s.betas = torch_linspace_f32(std::sqrt(c.beta_start), std::sqrt(c.beta_end), n);
      for (float& b : s.betas) b = b * b;
    } else if (c.beta_schedule == "squaredcos_cap_v2") {
      s.betas = betas_for_alpha_bar(n, /*cosine=*/true);
    } else if (c.beta_schedule == "exp") {
      s.betas = betas_for_alpha_bar(n, /*cosine=*/false);
    } else if (c.beta_schedule == "sigmoid") {
      const std::vector<float> x = torch_linspace_f32(-6, 6, n);
      const float range = float(c.beta_end - c.beta_start), start = float(c.beta_start);
      for (float v : x) s.betas.push_back(1.0f / (1.0f + std::exp(-v)) * range + start);
    }
  }
  if (c.rescale_betas_zero_snr) s.betas = rescale_zero_terminal_snr(s.betas);
  s.alphas = one_minus(s.betas);
  s.alphas_cumprod = cumprod(s.alphas);
  return s;
}

SigmaTable sigma_table(const std::vector<float>& alphas_cumprod) {
  SigmaTable table{std::vector<float>(alphas_cumprod.size()), std::vector<float>(alphas_cumprod.size())};
  for (size_t i = 0; i < alphas_cumprod.size(); ++i) {
    const float a = alphas_cumprod[i];
    table.sigmas[i] = std::sqrt((1.0f - a) / a);
    table.log_sigmas[i] = std::log(table.sigmas[i]);
  }
  return table;
}

void pin_zero_terminal_snr(TrainSchedule& train) { train.alphas_cumprod.back() = 0x1p-24f; }

std::vector<double> karras_sigmas(double sigma_min, double sigma_max, int64_t n) {
  const double rho = 7.0;
  const std::vector<double> ramp = np_linspace(0, 1, n);
  const double min_inv_rho = std::pow(sigma_min, 1 / rho);
  const double max_inv_rho = std::pow(sigma_max, 1 / rho);
  std::vector<double> out(ramp.size());
  for (size_t i = 0; i < out.size(); ++i) out[i] = std::pow(max_inv_rho + ramp[i] * (min_inv_rho - max_inv_rho), rho);
  return out;
}

double sigma_to_t(double sigma, const std::vector<float>& log_sigmas) {
  // numpy promotes the float64 log-sigma scalar to the float32 table's type for the comparisons and w.
  const float log_sigma = float(std::log(std::isnan(sigma) ? sigma : std::max(sigma, 1e-10)));
  const int64_t n = int64_t(log_sigmas.size());
  int64_t low = 0;  // the last index whose log-sigma is <= log_sigma (0 if none)
  for (int64_t i = 0; i < n; ++i)
    if (log_sigma - log_sigmas[size_t(i)] >= 0.0f) low = i;
  low = std::min(low, n - 2);
  const float lo = log_sigmas[size_t(low)], hi = log_sigmas[size_t(low + 1)];
  float w = (lo - log_sigma) / (lo - hi);
  if (!std::isnan(w)) w = std::clamp(w, 0.0f, 1.0f);
  return double(1.0f - w) * double(low) + double(w) * double(low + 1);
}

std::vector<double> spaced_timesteps(const SchedulerConfig& c, int n, bool round_linspace) {
  const int64_t T = c.num_train_timesteps;
  std::vector<double> t;
  if (c.timestep_spacing == "linspace") {
    t = np_linspace(0, double(T - 1), n);
    for (double& v : t) v = round_linspace ? np_round(v) : f32(v);
    std::reverse(t.begin(), t.end());
  } else if (c.timestep_spacing == "leading") {
    const int64_t ratio = T / n;
    for (int64_t i = n - 1; i >= 0; --i) t.push_back(double(i * ratio + c.steps_offset));
  } else if (c.timestep_spacing == "trailing") {
    t = np_arange(double(T), 0, -(double(T) / double(n)));
    for (double& v : t) v = np_round(v) - 1;
  } else {
    check_choice(c.class_name, "timestep_spacing", c.timestep_spacing, {"linspace", "leading", "trailing"});
  }
  return t;
}

std::vector<double> alpha_indexed_timesteps(const SchedulerConfig& c, int n, const std::string& class_name) {
  check_num_steps(c, n);
  KK_CHECK(n <= c.num_train_timesteps, class_name, ": num_inference_steps ", n,
           " cannot be larger than num_train_timesteps ", c.num_train_timesteps);
  std::vector<double> timesteps = spaced_timesteps(c, n, /*round_linspace=*/true);
  check_training_range(c, timesteps);
  return timesteps;
}

std::vector<double> solver_timesteps(const SchedulerConfig& c, int n, int last) {
  const int64_t T = c.num_train_timesteps;
  std::vector<double> t;
  if (c.timestep_spacing == "linspace") {
    const std::vector<double> grid = np_linspace(0, double(last - 1), n + 1);
    for (int i = n; i >= 1; --i) t.push_back(np_round(grid[size_t(i)]));
  } else if (c.timestep_spacing == "leading") {
    const int64_t ratio = last / (n + 1);
    for (int64_t i = n; i >= 1; --i) t.push_back(double(i * ratio + c.steps_offset));
  } else if (c.timestep_spacing == "trailing") {
    t = np_arange(double(last), 0, -(double(T) / double(n)));
    for (double& v : t) v = np_round(v) - 1;
  } else {
    check_choice(c.class_name, "timestep_spacing", c.timestep_spacing, {"linspace", "leading", "trailing"});
  }
  return t;
}

void check_num_steps(const SchedulerConfig& c, int n) {
  KK_CHECK(n >= 1, c.class_name, ": num_inference_steps must be at least 1, got ", n);
}

void check_training_range(const SchedulerConfig& c, const std::vector<double>& timesteps) {
  for (double t : timesteps)
    KK_CHECK(t >= 0 && t < double(c.num_train_timesteps), c.class_name, ": timestep ", t,
             " lies outside the training range [0, ", c.num_train_timesteps, ") (check steps_offset = ",
             c.steps_offset, " and timestep_spacing \"", c.timestep_spacing, "\")");
}

}  // namespace kakusan::sched
