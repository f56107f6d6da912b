#include "pipeline/prepare_timesteps.h"

namespace kakusan {

const std::vector<double>& prepare_timesteps(Scheduler& scheduler, int num_inference_steps, double eta,
                                             const InspectTensor& inspect) {
  scheduler.set_eta(eta);
  scheduler.set_timesteps(num_inference_steps);
  const std::vector<double>& timesteps = scheduler.timesteps();
  if (inspect) {
    Tensor t = Tensor::empty({int64_t(timesteps.size())});
    for (size_t i = 0; i < timesteps.size(); ++i) t.f32()[i] = float(timesteps[i]);
    inspect("timesteps", t);
  }
  return timesteps;
}

}  // namespace kakusan
