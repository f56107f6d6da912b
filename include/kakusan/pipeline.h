// kakusan: Stable Diffusion text-to-image in C++ — the library API.
//
//   #include <kakusan/pipeline.h>
//
//   kakusan::LoadOptions load;                       // dtype, vae override, threads ...
//   auto pipe = kakusan::StableDiffusionPipeline::load("runwayml/stable-diffusion-v1-5", load);
//   kakusan::GenerateParams params;                  // diffusers' __call__ names and defaults
//   params.prompt = {"portrait photo of a old warrior chief"};
//   params.num_inference_steps = 20;
//   params.seeds = {1};                              // torch.Generator("cpu").manual_seed(1)
//   pipe.set_scheduler("DPMSolverMultistepScheduler");
//   kakusan::GenerateResult out = pipe.generate(params);
//   out.images[0];                                   // RGB8, also out.image_tensor / out.latents
//
// Load once, generate many times. Errors are thrown as kakusan::Error with a message that names the
// problem (file, tensor, parameter) and what was expected.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kakusan/image.h"

namespace kakusan {

enum class WeightDType { Auto, F32, F16, BF16 };

struct LoadOptions {
  // Auto: keep what the files hold. F16/BF16 convert (and prefer `variant` files such as *.fp16.safetensors).
  WeightDType dtype = WeightDType::Auto;
  // diffusers' `variant` ("fp16" picks diffusion_pytorch_model.fp16.safetensors); empty = default files.
  std::string variant;
  // A VAE folder to use instead of the model's (the tutorial's sd-vae-ft-mse swap).
  std::optional<std::filesystem::path> vae;
  int num_threads = 0;  // 0 = all cores
};

// Attention memory lever, as diffusers' enable_attention_slicing / memory-efficient attention.
struct AttentionOptions {
  enum class Mode { Auto, Full, Sliced, Flash } mode = Mode::Auto;
  int slice_size = 0;  // Sliced: 0 = "auto" (half the heads, as diffusers)
};

struct StepInfo {
  int step = 0;          // 0-based index of the denoising step just finished
  int num_steps = 0;
  double timestep = 0;
  double seconds = 0;    // wall time of this step
};

struct GenerateParams {
  std::vector<std::string> prompt;                // one per batch entry
  std::vector<std::string> negative_prompt;      // empty, one for all, or one per prompt
  int height = 0;                                 // 0 = unet.sample_size * vae scale (512 for SD1.5)
  int width = 0;
  int num_inference_steps = 50;
  double guidance_scale = 7.5;                    // CFG is on iff > 1
  double guidance_rescale = 0.0;
  int num_images_per_prompt = 1;
  double eta = 0.0;                               // DDIM eta
  // Generators: empty = one random seed (reported in the result); one seed = ONE generator shared by all
  // images (diffusers' single generator); N seeds = one generator per image (N must equal the image count).
  std::vector<uint64_t> seeds;
  std::optional<int> clip_skip;
  AttentionOptions attention;
  bool vae_slicing = false;                       // decode one image at a time
  bool vae_tiling = false;                        // tiled decode for large images
  bool output_latents_only = false;               // output_type="latent": skip the VAE
  // Called after every step; return false to cancel (generate() then throws kakusan::Cancelled).
  std::function<bool(const StepInfo&)> callback;
};

struct GenerateResult {
  std::vector<Image> images;             // PNG-ready, round(x * 255)
  std::vector<float> latents;            // [B, 4, h, w] float32 (before VAE scaling), row-major
  std::vector<int64_t> latents_shape;
  std::vector<float> image_tensor;       // [B, H, W, 3] in [0, 1] (output_type="np")
  std::vector<uint64_t> seeds;           // the seed of each image's generator
  std::vector<std::string> warnings;     // e.g. the truncated part of a long prompt
};

class StableDiffusionPipeline {
 public:
  // `model` is a diffusers folder or a model id resolved offline through the Hugging Face cache.
  static StableDiffusionPipeline load(const std::string& model, const LoadOptions& options = {});
  ~StableDiffusionPipeline();
  StableDiffusionPipeline(StableDiffusionPipeline&&) noexcept;
  StableDiffusionPipeline& operator=(StableDiffusionPipeline&&) noexcept;

  // XScheduler.from_config(pipe.scheduler.config): a class name or alias ("euler_a", "DPM++ 2M Karras"),
  // plus options (key=value, typed by the option: "use_karras_sigmas" -> "true").
  void set_scheduler(const std::string& name_or_alias, const std::map<std::string, std::string>& options = {});
  std::string scheduler_name() const;

  GenerateResult generate(const GenerateParams& params);

  // The model's default image size (unet.sample_size * 2^(len(vae.block_out_channels) - 1)).
  int default_height() const;
  int default_width() const;

  struct Impl;

 private:
  explicit StableDiffusionPipeline(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace kakusan
