#include "schedulers/sample_ops.h"

#include <algorithm>
#include <cmath>

#include "schedulers/scheduler_config.h"

namespace kakusan::sched {

const float* dense_f32(const TensorView& v, const std::string& class_name, const char* what) {
  KK_CHECK(!v.empty(), class_name, ": ", what, " is empty");
  KK_CHECK(v.dtype == DType::F32, class_name, ": ", what, " must be float32, got ", dtype_name(v.dtype));
  KK_CHECK(v.is_contiguous(), class_name, ": ", what, " must be contiguous");
  return v.f32();
}

int64_t check_step_inputs(const TensorView& model_output, const TensorView& sample, const std::string& class_name) {
  dense_f32(model_output, class_name, "model_output");
  dense_f32(sample, class_name, "sample");
  KK_CHECK(model_output.shape == sample.shape, class_name, ": model_output shape ", model_output.shape,
           " differs from sample shape ", sample.shape);
  return sample.numel();
}

Tensor x0_from_alpha_sigma(const TensorView& model_output, const TensorView& sample, const SchedulerConfig& config,
                           float alpha, float sigma) {
  const float* m = model_output.f32();
  const float* x = sample.f32();
  const std::string& type = config.prediction_type;
  if (type == "epsilon") return map_like(sample, [&](int64_t i) { return (x[i] - sigma * m[i]) / alpha; });
  if (type == "v_prediction") return map_like(sample, [&](int64_t i) { return alpha * x[i] - sigma * m[i]; });
  if (type == "sample") return Tensor::copy_of(model_output);
  check_choice(config.class_name, "prediction_type", type, {"epsilon", "v_prediction", "sample"});
  return {};
}

Tensor x0_from_sigma(const TensorView& model_output, const TensorView& sample, const SchedulerConfig& config,
                     float sigma, bool allow_sample) {
  const float* m = model_output.f32();
  const float* x = sample.f32();
  const std::string& type = config.prediction_type;
  if (type == "epsilon") return map_like(sample, [&](int64_t i) { return x[i] - sigma * m[i]; });
  if (type == "v_prediction") {
    const float denom = sigma * sigma + 1.0f;
    const float c_out = -sigma / std::sqrt(denom);
    return map_like(sample, [&](int64_t i) { return m[i] * c_out + x[i] / denom; });
  }
  if (type == "sample" && allow_sample) return Tensor::copy_of(model_output);
  if (allow_sample) check_choice(config.class_name, "prediction_type", type, {"epsilon", "v_prediction", "sample"});
  check_choice(config.class_name, "prediction_type", type, {"epsilon", "v_prediction"});
  return {};
}

void threshold_or_clip_sample(Tensor& x0, const SchedulerConfig& config) {
  if (config.thresholding)
    threshold_sample(x0, config.dynamic_thresholding_ratio, config.sample_max_value);
  else if (config.clip_sample)
    clip_sample(x0, config.clip_sample_range);
}

void clip_sample(Tensor& x0, double range) {
  const float r = float(range);
  float* p = x0.f32();
  for (int64_t i = 0; i < x0.numel(); ++i) p[i] = std::clamp(p[i], -r, r);
}

void threshold_sample(Tensor& x0, double ratio, double max_value) {
  KK_ASSERT(x0.rank() >= 2);
  KK_CHECK(ratio >= 0 && ratio <= 1, "dynamic_thresholding_ratio must be in [0, 1], got ", ratio);
  const int64_t batch = x0.dim(0), per = x0.numel() / batch;
  float* p = x0.f32();
  std::vector<float> sorted(static_cast<size_t>(per));
  for (int64_t b = 0; b < batch; ++b) {
    float* row = p + b * per;
    for (int64_t i = 0; i < per; ++i) sorted[size_t(i)] = std::fabs(row[i]);
    std::sort(sorted.begin(), sorted.end());
    // torch.quantile's linear interpolation, with q and the ranks in the tensor's float32.
    const float rank = float(ratio) * float(per - 1);
    const int64_t below = int64_t(rank);
    const int64_t above = std::min(below + 1, per - 1);
    const float weight = rank - float(below);
    const float lo = sorted[size_t(below)], hi = sorted[size_t(above)];
    float s = weight < 0.5f ? lo + weight * (hi - lo) : hi - (hi - lo) * (1.0f - weight);
    s = std::min(std::max(s, 1.0f), float(max_value));
    for (int64_t i = 0; i < per; ++i) row[i] = std::clamp(row[i], -s, s) / s;
  }
}

Tensor add_noise_vp(const TensorView& original, const TensorView& noise, const std::vector<float>& alphas_cumprod,
                    double timestep, const std::string& class_name) {
  const float* x = dense_f32(original, class_name, "original sample");
  const float* n = dense_f32(noise, class_name, "noise");
  KK_CHECK(original.shape == noise.shape, class_name, ": noise shape ", noise.shape, " differs from sample shape ",
           original.shape);
  const bool in_range = timestep >= 0 && timestep < double(alphas_cumprod.size());  // false for NaN
  const int64_t t = in_range ? int64_t(timestep) : -1;
  KK_CHECK(in_range && double(t) == timestep, class_name,
           ": add_noise timestep must be a training timestep in [0, ", alphas_cumprod.size(), "), got ", timestep);
  const float a = alphas_cumprod[size_t(t)];
  const float sqrt_a = std::sqrt(a), sqrt_1ma = std::sqrt(1.0f - a);
  return map_like(original, [&](int64_t i) { return sqrt_a * x[i] + sqrt_1ma * n[i]; });
}

Tensor add_noise_ve(const TensorView& original, const TensorView& noise, float sigma, const std::string& class_name) {
  const float* x = dense_f32(original, class_name, "original sample");
  const float* n = dense_f32(noise, class_name, "noise");
  KK_CHECK(original.shape == noise.shape, class_name, ": noise shape ", noise.shape, " differs from sample shape ",
           original.shape);
  return map_like(original, [&](int64_t i) { return x[i] + n[i] * sigma; });
}

size_t index_for_timestep(const std::vector<double>& timesteps, double timestep, const std::string& class_name) {
  std::vector<size_t> hits;
  for (size_t i = 0; i < timesteps.size(); ++i)
    if (timesteps[i] == timestep) hits.push_back(i);
  KK_CHECK(!hits.empty(), class_name, ": timestep ", timestep, " is not one of the scheduler's timesteps");
  return hits.size() > 1 ? hits[1] : hits[0];
}

}  // namespace kakusan::sched
