#include "pipeline/generate_request.h"

namespace kakusan {

GenerateParams generate_params(const GenerateRequest& r) {
  GenerateParams p;
  p.prompt = r.prompts;
  p.negative_prompt = r.negative_prompts;
  p.height = r.height;
  p.width = r.width;
  p.num_inference_steps = r.num_inference_steps;
  p.guidance_scale = r.guidance_scale;
  p.guidance_rescale = r.guidance_rescale;
  p.num_images_per_prompt = r.num_images_per_prompt;
  p.eta = r.eta;
  p.seeds = r.seeds;
  p.clip_skip = r.clip_skip;
  p.prompt_syntax = r.prompt_syntax;
  p.attention = r.attention;
  p.vae_slicing = r.vae_slicing;
  p.vae_tiling = r.vae_tiling;
  p.vae_tile_size = r.vae_tile_size;
  p.stream_unet_weights = r.stream_unet_weights;
  if (r.low_memory) {
    p.stream_unet_weights = true;
    p.vae_tiling = true;
    if (p.vae_tile_size == 0) p.vae_tile_size = kLowMemoryVaeTile;
  }
  p.memory_policy = r.memory_policy;
  p.max_memory = r.max_memory;
  p.generator_device = r.generator_device;
  p.cuda_sm_count = r.cuda_sm_count;
  p.cuda_max_threads_per_sm = r.cuda_max_threads_per_sm;
  for (const std::string& path : r.image_paths) p.image.push_back(read_image(path));
  for (const std::string& path : r.mask_paths) p.mask_image.push_back(read_image(path));
  p.image.insert(p.image.end(), r.images.begin(), r.images.end());
  p.mask_image.insert(p.mask_image.end(), r.masks.begin(), r.masks.end());
  p.strength = r.strength;
  check_inputs(p);
  return p;
}

}  // namespace kakusan
