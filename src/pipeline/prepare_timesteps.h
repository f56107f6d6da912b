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

// diffusers' get_timesteps for img2img and inpainting: the index of the first step the loop runs for
// `strength`, t_start * scheduler.order with t_start = N - min(int(N * strength), N) (the scheduler's begin
// index). Throws Error, as diffusers' inpainting pipeline does, when `strength` leaves no step to run.
int first_step_for_strength(const Scheduler& scheduler, int num_inference_steps, double strength);

}  // namespace kakusan
