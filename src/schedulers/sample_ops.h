// Elementwise sample math shared by the schedulers: prediction-type conversion, clipping / dynamic
// thresholding of the predicted x0, and the forward (noising) process for add_noise.
//
// All arithmetic is float32 in the order diffusers' torch expressions evaluate it (a scalar coefficient is
// a float32 0-d tensor; every tensor op rounds), so results match diffusers to float32 rounding.
#pragma once

#include <string>
#include <vector>

#include "core/tensor.h"
#include "schedulers/scheduler.h"

namespace kakusan::sched {

// A dense float32 sample; throws Error naming the argument otherwise.
const float* dense_f32(const TensorView& v, const std::string& class_name, const char* what);
// Checks model_output and sample are dense float32 of one shape; returns the element count.
int64_t check_step_inputs(const TensorView& model_output, const TensorView& sample, const std::string& class_name);

// A new float32 tensor of `like`'s shape whose element i is f(i).
template <typename F>
Tensor map_like(const TensorView& like, F&& f) {
  Tensor out = Tensor::empty(like.shape);
  float* o = out.f32();
  const int64_t n = like.numel();
  for (int64_t i = 0; i < n; ++i) o[i] = f(i);
  return out;
}

// x0 for a variance-preserving forward process x = alpha * x0 + sigma * eps (DDIM, DDPM, DPM-Solver,
// DEIS, UniPC): "epsilon" (x - sigma * out) / alpha, "v_prediction" alpha * x - sigma * out,
// "sample" out.
Tensor x0_from_alpha_sigma(const TensorView& model_output, const TensorView& sample, const SchedulerConfig& config,
                           float alpha, float sigma);
// x0 for the variance-exploding (Karras) parameterisation x = x0 + sigma * eps of the Euler family:
// "epsilon" x - sigma * out, "v_prediction" out * (-sigma / sqrt(sigma^2 + 1)) + x / (sigma^2 + 1),
// "sample" out (where the class allows it).
Tensor x0_from_sigma(const TensorView& model_output, const TensorView& sample, const SchedulerConfig& config,
                     float sigma, bool allow_sample = true);

// Clamps x0 to [-clip_sample_range, clip_sample_range] in place.
void clip_sample(Tensor& x0, double range);
// Imagen's dynamic thresholding in place: per sample, s = clamp(quantile(|x0|, ratio), 1, max_value);
// x0 = clamp(x0, -s, s) / s.
void threshold_sample(Tensor& x0, double ratio, double max_value);
// DDIM / DDPM: dynamic thresholding when the config asks for it, else clipping when it asks for that.
void threshold_or_clip_sample(Tensor& x0, const SchedulerConfig& config);

// sqrt(alphas_cumprod[t]) * original + sqrt(1 - alphas_cumprod[t]) * noise.
Tensor add_noise_vp(const TensorView& original, const TensorView& noise, const std::vector<float>& alphas_cumprod,
                    double timestep, const std::string& class_name);
// original + noise * sigma.
Tensor add_noise_ve(const TensorView& original, const TensorView& noise, float sigma, const std::string& class_name);
// The index of `timestep` in `timesteps` (the second match when it repeats, as diffusers picks for
// img2img); throws Error if absent.
size_t index_for_timestep(const std::vector<double>& timesteps, double timestep, const std::string& class_name);

}  // namespace kakusan::sched
