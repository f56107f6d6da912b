// Step 2, diffusers' retrieve_timesteps: the scheduler set to the run's steps.
#pragma once

#include <vector>

#include "pipeline/step_common.h"
#include "schedulers/scheduler.h"

namespace kakusan {

// Sets eta (schedulers without one ignore it) and the steps; returns scheduler.timesteps(). Inspects
// "timesteps" as float32.
const std::vector<double>& prepare_timesteps(Scheduler& scheduler, int num_inference_steps, double eta,
                                             const InspectTensor& inspect = {});

}  // namespace kakusan
