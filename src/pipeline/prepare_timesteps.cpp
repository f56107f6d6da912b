#include "pipeline/prepare_timesteps.h"

#include <algorithm>

#include "core/error.h"

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

int first_step_for_strength(const Scheduler& scheduler, int num_inference_steps, double strength) {
  const int init_timestep = std::min(int(double(num_inference_steps) * strength), num_inference_steps);
  const int t_start = std::max(num_inference_steps - init_timestep, 0);
  const int steps_run = num_inference_steps - t_start;
  KK_CHECK(steps_run >= 1, "After adjusting the num_inference_steps by strength parameter: ", strength,
           ", the number of pipeline steps is ", steps_run,
           " which is < 1 and not appropriate for this pipeline (raise `strength` or `num_inference_steps`)");
  const int first = t_start * scheduler.order();
  KK_ASSERT(first < int(scheduler.timesteps().size()));
  return first;
}

}  // namespace kakusan
