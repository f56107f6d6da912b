#include "schedulers/scheduler.h"

namespace kakusan {

Tensor NoiseSource::randn(const Shape& shape) {
  if (!per_sample_) return generators_.front()->randn(shape);
  // diffusers' randn_tensor with a generator list: one (1, ...) draw per sample, concatenated.
  KK_CHECK(shape.rank() >= 1 && shape[0] == int64_t(generators_.size()), "scheduler noise: ", generators_.size(),
           " generators given for a batch of ", shape.rank() ? shape[0] : 0);
  Tensor out = Tensor::empty(shape);
  Shape one = shape;
  one[0] = 1;
  const int64_t per = one.numel();
  for (size_t i = 0; i < generators_.size(); ++i) generators_[i]->randn(out.f32() + int64_t(i) * per, per);
  return out;
}

void Scheduler::scale_model_input(TensorView /*sample*/, size_t /*step_index*/) const {}

Tensor Scheduler::add_noise_at_step(const TensorView& original, const TensorView& noise, size_t step_index) const {
  KK_CHECK(step_index < timesteps_.size(), class_name(), ": add_noise step_index ", step_index,
           " is past the last of ", timesteps_.size(), " timesteps");
  return add_noise(original, noise, timesteps_[step_index]);
}

Tensor Scheduler::step(const TensorView& model_output, size_t step_index, const TensorView& sample,
                       Generator& generator) {
  NoiseSource noise(generator);
  return checked_step(model_output, step_index, sample, noise);
}

Tensor Scheduler::step(const TensorView& model_output, size_t step_index, const TensorView& sample,
                       std::span<Generator* const> generators) {
  KK_CHECK(!generators.empty(), class_name(), ": step needs at least one generator");
  NoiseSource noise(generators);
  return checked_step(model_output, step_index, sample, noise);
}

Tensor Scheduler::checked_step(const TensorView& model_output, size_t step_index, const TensorView& sample,
                               NoiseSource& noise) {
  KK_CHECK(!timesteps_.empty(), class_name(), ": call set_timesteps before step");
  KK_CHECK(step_index < timesteps_.size(), class_name(), ": step_index ", step_index, " is past the last of ",
           timesteps_.size(), " timesteps");
  // Multistep and two-stage schedulers keep state between steps, so steps must come in order.
  KK_CHECK(!next_step_ || *next_step_ == step_index, class_name(), ": steps must be taken in order: expected step ",
           next_step_.value_or(0), ", got ", step_index, " (call set_timesteps to start over)");
  Tensor prev = step_impl(model_output, step_index, sample, noise);
  next_step_ = step_index + 1;
  return prev;
}

}  // namespace kakusan
