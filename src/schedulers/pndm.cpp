// PNDMScheduler: pseudo numerical methods for diffusion models (Liu et al. 2022), Stable Diffusion 1.x's
// default. With skip_prk_steps (as SD ships it) the Runge-Kutta warm-up is replaced by one extra model
// call: the second timestep repeats, and its step averages both outputs from the first step's sample.
// The linear multistep (PLMS) part then combines up to the last four model outputs (`ets`).

#include <algorithm>
#include <cmath>

#include "schedulers/sample_ops.h"
#include "schedulers/schedule_math.h"
#include "schedulers/scheduler_classes.h"

namespace kakusan {
namespace {

class PNDM final : public Scheduler {
 public:
  explicit PNDM(SchedulerConfig c) : Scheduler(std::move(c)) {
    train_ = sched::make_train_schedule(config_, {"linear", "scaled_linear", "squaredcos_cap_v2"});
    final_alpha_cumprod_ = config_.set_alpha_to_one ? 1.0f : train_.alphas_cumprod.front();
    check_choice(class_name(), "prediction_type", config_.prediction_type, {"epsilon", "v_prediction"});
    check_choice(class_name(), "timestep_spacing", config_.timestep_spacing, {"linspace", "leading", "trailing"});
  }

  void set_timesteps(int n) override {
    sched::check_num_steps(config_, n);
    num_inference_steps_ = n;
    std::vector<double> base = sched::spaced_timesteps(config_, n, /*round_linspace=*/true);
    std::reverse(base.begin(), base.end());  // ascending, as diffusers' _timesteps
    prk_timesteps_.clear();
    std::vector<double> plms;
    if (config_.skip_prk_steps) {
      // _timesteps[:-1] + _timesteps[-2:-1] + _timesteps[-1:], reversed: the second timestep repeats.
      plms.assign(base.begin(), base.end() - 1);
      if (base.size() >= 2) plms.push_back(base[base.size() - 2]);
      plms.push_back(base.back());
      std::reverse(plms.begin(), plms.end());
    } else {
      KK_CHECK(n >= 4, class_name(), ": without skip_prk_steps the Runge-Kutta warm-up needs at least 4 steps, got ", n);
      // The last four timesteps, each followed by its half step, then every entry but the last doubled.
      const double half = double(config_.num_train_timesteps / n / 2);
      std::vector<double> prk;
      for (size_t k = base.size() - 4; k < base.size(); ++k) {
        prk.push_back(base[k]);
        prk.push_back(base[k] + half);
      }
      std::vector<double> doubled;
      for (size_t k = 0; k + 1 < prk.size(); ++k) doubled.insert(doubled.end(), 2, prk[k]);
      prk_timesteps_.assign(doubled.begin() + 1, doubled.end() - 1);
      std::reverse(prk_timesteps_.begin(), prk_timesteps_.end());
      plms.assign(base.begin(), base.end() - 3);
      std::reverse(plms.begin(), plms.end());
    }
    timesteps_ = prk_timesteps_;
    timesteps_.insert(timesteps_.end(), plms.begin(), plms.end());
    sched::check_training_range(config_, timesteps_);
    ets_.clear();
    counter_ = 0;
    cur_model_output_.reset();
    cur_sample_.reset();
    reset_step_order();
  }

  Tensor add_noise(const TensorView& original, const TensorView& noise, double timestep) const override {
    return sched::add_noise_vp(original, noise, train_.alphas_cumprod, timestep, class_name());
  }

 protected:
  Tensor step_impl(const TensorView& model_output, size_t i, const TensorView& sample, NoiseSource&) override {
    sched::check_step_inputs(model_output, sample, class_name());
    Tensor prev = counter_ < prk_timesteps_.size() && !config_.skip_prk_steps
                      ? step_prk(model_output, int64_t(timesteps_[i]), sample)
                      : step_plms(model_output, int64_t(timesteps_[i]), sample);
    ++counter_;
    return prev;
  }

 private:
  // Runge-Kutta warm-up: four model calls per step, weighted 1/6, 1/3, 1/3, 1/6.
  Tensor step_prk(const TensorView& m, int64_t t, const TensorView& sample) {
    const int64_t n = sample.numel();
    const int64_t diff_to_prev = counter_ % 2 ? 0 : config_.num_train_timesteps / num_inference_steps_ / 2;
    const int64_t prev_t = t - diff_to_prev;
    const int64_t t_start = int64_t(prk_timesteps_[counter_ / 4 * 4]);
    auto accumulate = [&](float weight) {
      if (!cur_model_output_) cur_model_output_ = Tensor::zeros(sample.shape);
      float* acc = cur_model_output_->f32();
      for (int64_t k = 0; k < n; ++k) acc[k] = acc[k] + weight * m.f32()[k];
    };
    Tensor output = Tensor::copy_of(m);
    switch (counter_ % 4) {
      case 0:
        accumulate(float(1.0 / 6));
        ets_.push_back(Tensor::copy_of(m));
        cur_sample_ = Tensor::copy_of(sample);
        break;
      case 1:
      case 2: accumulate(float(1.0 / 3)); break;
      case 3: {
        const float* acc = cur_model_output_->f32();
        const float w = float(1.0 / 6);
        output = sched::map_like(sample, [&](int64_t k) { return acc[k] + w * m.f32()[k]; });
        cur_model_output_.reset();
        break;
      }
    }
    const TensorView start = cur_sample_ ? cur_sample_->view() : sample;
    return prev_sample(start, t_start, prev_t, output);
  }

  // Linear multistep: Adams-Bashforth combinations of the last 1-4 model outputs.
  Tensor step_plms(const TensorView& m, int64_t t, const TensorView& sample) {
    const int64_t stride = config_.num_train_timesteps / num_inference_steps_;
    int64_t prev_t = t - stride;
    if (counter_ != 1) {
      while (ets_.size() > 3) ets_.erase(ets_.begin());
      ets_.push_back(Tensor::copy_of(m));
    } else {
      prev_t = t;
      t = t + stride;
    }
    const float* e1 = ets_.back().f32();
    TensorView x = sample;
    Tensor output;
    if (ets_.size() == 1 && counter_ == 0) {
      output = Tensor::copy_of(m);
      cur_sample_ = Tensor::copy_of(sample);
    } else if (ets_.size() == 1 && counter_ == 1) {
      output = sched::map_like(sample, [&](int64_t k) { return (m.f32()[k] + e1[k]) / 2.0f; });
      x = cur_sample_->view();
    } else if (ets_.size() == 2) {
      const float* e2 = ets_[0].f32();
      output = sched::map_like(sample, [&](int64_t k) { return (3.0f * e1[k] - e2[k]) / 2.0f; });
    } else if (ets_.size() == 3) {
      const float* e2 = ets_[1].f32();
      const float* e3 = ets_[0].f32();
      output = sched::map_like(sample, [&](int64_t k) { return (23.0f * e1[k] - 16.0f * e2[k] + 5.0f * e3[k]) / 12.0f; });
    } else {
      const float* e2 = ets_[2].f32();
      const float* e3 = ets_[1].f32();
      const float* e4 = ets_[0].f32();
      const float w = float(1.0 / 24);
      output = sched::map_like(sample, [&](int64_t k) {
        return w * (55.0f * e1[k] - 59.0f * e2[k] + 37.0f * e3[k] - 9.0f * e4[k]);
      });
    }
    Tensor prev = prev_sample(x, t, prev_t, output);
    if (ets_.size() == 1 && counter_ == 1) cur_sample_.reset();
    return prev;
  }

  // Formula (9) of the PNDM paper: x_{t-delta} from x_t and the (combined) model output.
  Tensor prev_sample(const TensorView& x, int64_t t, int64_t prev_t, const Tensor& model_output) const {
    const float alpha_t = train_.alphas_cumprod.at(size_t(t));
    const float alpha_prev = prev_t >= 0 ? train_.alphas_cumprod.at(size_t(prev_t)) : final_alpha_cumprod_;
    const float beta_t = 1.0f - alpha_t, beta_prev = 1.0f - alpha_prev;
    const float* xs = x.f32();
    const float* mo = model_output.f32();
    Tensor eps;
    if (config_.prediction_type == "v_prediction") {
      const float a = std::sqrt(alpha_t), b = std::sqrt(beta_t);
      eps = sched::map_like(x, [&](int64_t k) { return a * mo[k] + b * xs[k]; });
      mo = eps.f32();
    }
    const float sample_coeff = std::sqrt(alpha_prev / alpha_t);
    const float denom = alpha_t * std::sqrt(beta_prev) + std::sqrt(alpha_t * beta_t * alpha_prev);
    const float diff = alpha_prev - alpha_t;
    return sched::map_like(x, [&](int64_t k) { return sample_coeff * xs[k] - diff * mo[k] / denom; });
  }

  sched::TrainSchedule train_;
  float final_alpha_cumprod_ = 1.0f;
  int num_inference_steps_ = 0;
  std::vector<double> prk_timesteps_;
  std::vector<Tensor> ets_;  // past model outputs, oldest first (at most 4)
  size_t counter_ = 0;
  std::optional<Tensor> cur_model_output_;
  std::optional<Tensor> cur_sample_;
};

}  // namespace

std::vector<ConfigKey> pndm_config_keys() {
  return {key_num_train_timesteps(),
          key_beta_start(),
          key_beta_end(),
          key_beta_schedule(),
          key_trained_betas(),
          {"skip_prk_steps", ConfigType::Bool, false},
          {"set_alpha_to_one", ConfigType::Bool, false},
          {"prediction_type", ConfigType::String, "epsilon"},
          {"timestep_spacing", ConfigType::String, "leading"},
          {"steps_offset", ConfigType::Int, 0}};
}

std::unique_ptr<Scheduler> make_pndm(SchedulerConfig config) { return std::make_unique<PNDM>(std::move(config)); }

}  // namespace kakusan
