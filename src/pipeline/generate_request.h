// One way from a front end's request to GenerateParams: the CLI (flags) and the C API (struct kakusan_params)
// each parse their own syntax into a GenerateRequest and build the parameters with generate_params(), so the
// levers and defaults they offer cannot drift apart. Callbacks (progress, step end) are the front end's own.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "kakusan/pipeline.h"

namespace kakusan {

struct GenerateRequest {
  std::vector<std::string> prompts;
  std::vector<std::string> negative_prompts;
  int height = 0, width = 0;
  int num_inference_steps = GenerateParams{}.num_inference_steps;
  double guidance_scale = GenerateParams{}.guidance_scale;
  double guidance_rescale = GenerateParams{}.guidance_rescale;
  int num_images_per_prompt = GenerateParams{}.num_images_per_prompt;
  double eta = GenerateParams{}.eta;
  std::vector<uint64_t> seeds;
  std::optional<int> clip_skip;
  PromptSyntax prompt_syntax = PromptSyntax::Diffusers;
  AttentionOptions attention;
  bool vae_slicing = false;
  bool vae_tiling = false;
  int vae_tile_size = 0;
  bool stream_unet_weights = false;
  // The levers that trade a little speed for memory, all at once: streamed UNet weights and VAE tiling, in
  // kLowMemoryVaeTile-pixel tiles unless vae_tile_size is given.
  bool low_memory = false;
  GenerateParams::MemoryPolicy memory_policy = GenerateParams{}.memory_policy;
  int64_t max_memory = 0;
  // torch.Generator("cpu") or torch.Generator("cuda") noise, and the GPU launch shape the latter depends on.
  std::string generator_device = GenerateParams{}.generator_device;
  int cuda_sm_count = GenerateParams{}.cuda_sm_count;
  int cuda_max_threads_per_sm = GenerateParams{}.cuda_max_threads_per_sm;
  // Image-to-image / inpainting: PNG files read by generate_params (read_image), and the strength (unset:
  // the pipeline's default).
  std::vector<std::string> image_paths;
  std::vector<std::string> mask_paths;
  // Pictures already decoded (the server's base64 PNGs, through decode_image), after those of the paths.
  std::vector<Image> images;
  std::vector<Image> masks;
  std::optional<double> strength;
};

// The parameters of `request` with its images read, checked (check_inputs: throws Error naming the bad
// parameter or file).
GenerateParams generate_params(const GenerateRequest& request);

}  // namespace kakusan
