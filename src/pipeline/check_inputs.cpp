// check_inputs: everything about GenerateParams that can be judged without a model, so that a bad request
// fails before any weights are read (the CLI calls it first, generate() again).
#include <cmath>

#include "core/error.h"
#include "core/philox_generator.h"
#include "kakusan/pipeline.h"

namespace kakusan {

namespace {

void check_side(const char* name, int value) {
  if (value == 0) return;  // the model's default
  KK_CHECK(value % 8 == 0, "`height` and `width` have to be divisible by 8 but `", name, "` is ", value);
  KK_CHECK(value >= 8 && value <= kMaxImageSide, "`", name, "` must be between 8 and ", kMaxImageSide, " but is ",
           value);
}

}  // namespace

void check_inputs(const GenerateParams& p) {
  KK_CHECK(!p.prompt.empty(), "`prompt` is empty: give at least one prompt");
  const size_t num_prompts = p.prompt.size();
  KK_CHECK(p.negative_prompt.empty() || p.negative_prompt.size() == 1 || p.negative_prompt.size() == num_prompts,
           "`negative_prompt` has batch size ", p.negative_prompt.size(), ", but `prompt` has batch size ",
           num_prompts, ": give one negative prompt for all prompts or one per prompt");
  check_side("height", p.height);
  check_side("width", p.width);
  KK_CHECK(p.num_inference_steps >= 1, "`num_inference_steps` must be at least 1 but is ", p.num_inference_steps);
  KK_CHECK(std::isfinite(p.guidance_scale), "`guidance_scale` must be a finite number but is ", p.guidance_scale);
  KK_CHECK(std::isfinite(p.guidance_rescale) && p.guidance_rescale >= 0 && p.guidance_rescale <= 1,
           "`guidance_rescale` must be between 0 and 1 but is ", p.guidance_rescale);
  KK_CHECK(std::isfinite(p.eta) && p.eta >= 0, "`eta` must be a finite number >= 0 but is ", p.eta);
  KK_CHECK(p.num_images_per_prompt >= 1, "`num_images_per_prompt` must be at least 1 but is ",
           p.num_images_per_prompt);
  KK_CHECK(p.num_images_per_prompt <= kMaxImagesPerCall && num_prompts * size_t(p.num_images_per_prompt) <=
                                                               size_t(kMaxImagesPerCall),
           "too many images in one call: ", num_prompts, " prompts x ", p.num_images_per_prompt,
           " images per prompt (at most ", kMaxImagesPerCall, ")");
  const size_t num_images = num_prompts * size_t(p.num_images_per_prompt);
  if (p.generator_index.empty()) {
    KK_CHECK(p.seeds.size() <= 1 || p.seeds.size() == num_images, "You have passed a list of ", p.seeds.size(),
             " seeds (one generator per image), but requested an effective batch size of ", num_images,
             " images: give one seed (a generator shared by all images) or one seed per image");
  } else {
    KK_CHECK(p.generator_index.size() == num_images, "`generator_index` has ", p.generator_index.size(),
             " entries but there are ", num_images, " images");
    for (int index : p.generator_index)
      KK_CHECK(index >= 0 && size_t(index) < p.seeds.size(), "`generator_index` entry ", index,
               " does not name one of the ", p.seeds.size(), " seeds");
  }
  KK_CHECK(p.generator_device == "cpu" || p.generator_device == "cuda", "`generator_device` must be \"cpu\" or ",
           "\"cuda\" but is \"", p.generator_device, "\"");
  KK_CHECK(p.cuda_sm_count >= 1 && p.cuda_sm_count <= CudaLaunchShape::kMaxSmCount, "`cuda_sm_count` must be in 1..",
           CudaLaunchShape::kMaxSmCount, " but is ", p.cuda_sm_count);
  KK_CHECK(p.cuda_max_threads_per_sm >= CudaLaunchShape::kMinThreadsPerSm &&
               p.cuda_max_threads_per_sm <= CudaLaunchShape::kMaxThreadsPerSm,
           "`cuda_max_threads_per_sm` must be in ", CudaLaunchShape::kMinThreadsPerSm, "..",
           CudaLaunchShape::kMaxThreadsPerSm, " but is ", p.cuda_max_threads_per_sm);
  if (p.clip_skip) KK_CHECK(*p.clip_skip >= 0, "`clip_skip` must be >= 0 but is ", *p.clip_skip);
  KK_CHECK(p.attention.slice_size >= 0, "attention slice size must be >= 0 but is ", p.attention.slice_size);
  KK_CHECK(p.vae_tile_size == 0 || (p.vae_tile_size >= 64 && p.vae_tile_size <= kMaxImageSide &&
                                    p.vae_tile_size % 8 == 0),
           "`vae_tile_size` must be 0 (the VAE's sample_size) or a multiple of 8 between 64 and ", kMaxImageSide,
           " but is ", p.vae_tile_size);
}

}  // namespace kakusan
