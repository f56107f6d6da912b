// Step 4, the one denoising loop of every pipeline (text-to-image, image-to-image, inpainting): from
// `first_step` (img2img's t_start; 0 for text-to-image) to the end of the scheduler's timesteps, each step
// builds the model input, runs the noise model, applies classifier-free guidance and takes the scheduler step.
//
// The buffers the loop needs (model input, timestep, noise prediction) are allocated once, before the first
// step. What the UNet sees comes from a MakeModelInput: the default is the latents, doubled for CFG and
// scaled by the scheduler; inpainting concatenates the mask and the masked image's latents to that.
#pragma once

#include <cstdint>
#include <functional>

#include "kakusan/pipeline.h"
#include "pipeline/generators.h"
#include "pipeline/step_common.h"
#include "schedulers/scheduler.h"

namespace kakusan {

// cat([x, x]) on dimension 0, written into `out` ([2B, ...]): the classifier-free-guidance batch.
// Host memory: the latents live on the host with the scheduler.
void duplicate_batch(const TensorView& x, const TensorView& out);

// Writes step `step`'s model input into the host tensor `model_input` ([unet_batch, in_channels, h, w]); the
// loop uploads it.
using MakeModelInput = std::function<void(const Tensor& latents, size_t step, const TensorView& model_input)>;

// The default input: the latents (doubled with classifier-free guidance), scaled by the scheduler for the
// step. It has the latents' channel count.
MakeModelInput scaled_latents_input(const Scheduler& scheduler, bool classifier_free_guidance);

// Throws Error unless a UNet taking `in_channels` can be fed the default input of `latent_channels`.
void check_default_model_input(int64_t in_channels, int64_t latent_channels);

// One pass of the noise model: noise_pred = model(model_input, t), t a [1] float32 tensor (the UNet: see
// unet_noise_model). Tests pass a fake.
using NoiseModel =
    std::function<void(const TensorView& model_input, const TensorView& t, const TensorView& noise_pred)>;

struct DenoiseOptions {
  int first_step = 0;                  // the scheduler step the loop starts at
  int64_t model_input_channels = 0;    // what make_model_input writes (0: the latents' channels)
  bool classifier_free_guidance = false;
  double guidance_scale = 1.0;
  double guidance_rescale = 0.0;       // rescale_noise_cfg factor (0 = off)
  std::function<bool(const StepInfo&)> callback_on_step_end;  // false: throw Cancelled
  ProgressCallback progress;
  // After each scheduler step, before the step callback: may change the latents in place (inpainting with an
  // ordinary UNet puts the known region back, noised to the next step).
  std::function<void(Tensor& latents, size_t step)> after_step;
  InspectTensor inspect;  // "unet_input_step0" (the first step's), "unet_output_step<i>", "latents_after_step<i>"
};

// Runs the loop on `latents` [B, C, h, w] (already scaled by init_noise_sigma, or noised to the first step)
// and returns the denoised latents. An empty `make_model_input` is scaled_latents_input(backend, ...).
Tensor denoise(Backend& backend, Scheduler& scheduler, GeneratorSet& generators, Tensor latents,
               const NoiseModel& model, const DenoiseOptions& options, const MakeModelInput& make_model_input = {});

}  // namespace kakusan
