#include "pipeline/denoise.h"

#include <optional>
#include <span>

#include "backend/staged_tensor.h"

#include "core/clock.h"
#include "core/error.h"
#include "pipeline/guidance.h"

namespace kakusan {

void duplicate_batch(const TensorView& x, const TensorView& out) {
  const int64_t batch = x.dim(0);
  KK_ASSERT(out.dim(0) == 2 * batch);
  convert_into(x, out.slice0(0, batch));
  convert_into(x, out.slice0(batch, 2 * batch));
}

MakeModelInput scaled_latents_input(const Scheduler& scheduler, bool classifier_free_guidance) {
  return [&scheduler, classifier_free_guidance](const Tensor& latents, size_t step, const TensorView& model_input) {
    if (classifier_free_guidance)
      duplicate_batch(latents, model_input);
    else
      convert_into(latents, model_input);
    scheduler.scale_model_input(model_input, step);
  };
}

void check_default_model_input(int64_t in_channels, int64_t latent_channels) {
  KK_CHECK(in_channels == latent_channels, "the UNet takes ", in_channels, " input channels but the latents have ",
           latent_channels, " (the VAE's latent_channels): a text-to-image UNet's in_channels must equal them (an "
           "inpainting UNet, with 9, needs the mask and masked-image latents as extra input)");
}

Tensor denoise(Backend& backend, Scheduler& scheduler, GeneratorSet& generators, Tensor latents,
               const NoiseModel& model, const DenoiseOptions& options, const MakeModelInput& make_model_input) {
  const std::vector<double>& timesteps = scheduler.timesteps();
  const int num_steps = int(timesteps.size());
  KK_CHECK(options.first_step >= 0 && options.first_step <= num_steps, "the denoising loop's first step ",
           options.first_step, " is outside the scheduler's ", num_steps, " steps");
  const bool cfg = options.classifier_free_guidance;
  const int64_t num_images = latents.dim(0);
  const int64_t unet_batch = cfg ? 2 * num_images : num_images;
  const int64_t input_channels = options.model_input_channels > 0 ? options.model_input_channels : latents.dim(1);
  if (!make_model_input) check_default_model_input(input_channels, latents.dim(1));
  const MakeModelInput make_input =
      make_model_input ? make_model_input : scaled_latents_input(scheduler, cfg);

  // The latents and the scheduler stay on the host; per step the model input and t go to the backend, and the
  // (guided) prediction comes back: one copy each way, none on a host backend.
  const Shape latents_shape = latents.shape();
  StagedTensor model_input(backend, {unet_batch, input_channels, latents.dim(2), latents.dim(3)});
  StagedTensor noise_pred(backend, {unet_batch, latents.dim(1), latents.dim(2), latents.dim(3)});
  StagedTensor t(backend, {1});
  std::optional<StagedTensor> guided;
  if (cfg) guided.emplace(backend, latents_shape);
  Tensor text_prediction;  // the text half of noise_pred on the host, for guidance_rescale
  if (cfg && options.guidance_rescale > 0.0) text_prediction = Tensor::empty(latents_shape);
  const InspectTensor& inspect = options.inspect;
  report_progress(options.progress, Phase::Denoising, 0, num_steps - options.first_step);
  for (int i = options.first_step; i < num_steps; ++i) {
    const auto step_start = Clock::now();
    make_input(latents, size_t(i), model_input.host());
    if (inspect && i == options.first_step) inspect("unet_input_step0", model_input.host());
    model_input.upload();
    // Predict the noise residual; t (the same for the whole batch) as float32, as the UNet's time_proj sees it.
    t.host().f32()[0] = float(timesteps[size_t(i)]);
    t.upload();
    model(model_input.on_backend(), t.on_backend(), noise_pred.on_backend());
    if (inspect) inspect(str_cat("unet_output_step", i), noise_pred.on_backend());
    // Guidance on the backend: uncond + g * (cond - uncond); then optionally rescaled (guidance_rescale).
    if (cfg) {
      backend.cfg_combine(noise_pred.on_backend(), float(options.guidance_scale), guided->on_backend());
      guided->download();
      if (options.guidance_rescale > 0.0) {
        backend.download(noise_pred.on_backend().slice0(num_images, unet_batch), text_prediction);
        rescale_noise_cfg(guided->host(), text_prediction, float(options.guidance_rescale));
      }
    } else {
      noise_pred.download();
    }
    // x_t -> x_t-1, drawing any noise from the pipeline's generator(s).
    const Tensor& prediction = cfg ? guided->host() : noise_pred.host();
    latents = generators.per_image()
                  ? scheduler.step(prediction, size_t(i), latents,
                                   std::span<Generator* const>(generators.image_generators()))
                  : scheduler.step(prediction, size_t(i), latents, generators.shared());
    if (options.after_step) options.after_step(latents, size_t(i));
    if (inspect) inspect(str_cat("latents_after_step", i), latents);
    if (options.callback_on_step_end) {
      StepInfo info{i, num_steps, timesteps[size_t(i)], seconds_since(step_start), latents.f32(),
                    dims_of(latents.shape())};
      if (!options.callback_on_step_end(info)) throw Cancelled();
    }
    report_progress(options.progress, Phase::Denoising, i + 1 - options.first_step, num_steps - options.first_step);
  }
  return latents;
}

}  // namespace kakusan
