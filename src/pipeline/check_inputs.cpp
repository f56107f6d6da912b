// check_inputs: everything about GenerateParams that can be judged without a model, so that a bad request
// fails before any weights are read (the CLI calls it first, generate() again).
#include <algorithm>
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

void check_images(const GenerateParams& p, size_t num_images) {
  KK_CHECK(p.mask_image.empty() || !p.image.empty(), "`mask_image` is given without `image`: inpainting needs the "
           "image to repaint");
  if (p.image.empty()) {
    KK_CHECK(!p.strength, "`strength` is given without `image`: it is an image-to-image / inpainting parameter");
    return;
  }
  const double strength = effective_strength(p);
  KK_CHECK(std::isfinite(strength) && strength >= 0.0 && strength <= 1.0,
           "The value of strength should in [0.0, 1.0] but is ", strength);
  const int steps_run = std::min(int(double(p.num_inference_steps) * strength), p.num_inference_steps);
  KK_CHECK(steps_run >= 1, "After adjusting the num_inference_steps by strength parameter: ", strength,
           ", the number of pipeline steps is ", steps_run,
           " which is < 1 and not appropriate for this pipeline (raise `strength` or `num_inference_steps`)");
  KK_CHECK(p.image.size() == 1 || p.image.size() == num_images, "`image` has ", p.image.size(),
           " pictures for ", num_images, " generated images: give one, or one per image");
  KK_CHECK(p.mask_image.empty() || p.mask_image.size() == 1 || p.mask_image.size() == p.image.size(),
           "`mask_image` has ", p.mask_image.size(), " masks for ", p.image.size(),
           " images: give one, or one per image");
  const auto check_picture = [](const Image& image, const char* what) {
    KK_CHECK(image.width >= 1 && image.height >= 1 && image.width <= kMaxImageSide && image.height <= kMaxImageSide,
             "`", what, "` is ", image.width, "x", image.height, ": sides must be between 1 and ", kMaxImageSide);
    KK_CHECK(image.rgb.size() == size_t(image.width) * size_t(image.height) * 3, "`", what, "` holds ",
             image.rgb.size(), " bytes but ", image.width, "x", image.height, " RGB needs ",
             size_t(image.width) * size_t(image.height) * 3);
  };
  for (const Image& image : p.image) check_picture(image, "image");
  for (const Image& mask : p.mask_image) {
    check_picture(mask, "mask_image");
    const Image& image = p.image.front();
    KK_CHECK(mask.width == image.width && mask.height == image.height, "the mask is ", mask.width, "x", mask.height,
             " but the image is ", image.width, "x", image.height, ": they must be the same size");
  }
  for (const Image& image : p.image)
    KK_CHECK(image.width == p.image.front().width && image.height == p.image.front().height,
             "the input images differ in size (", p.image.front().width, "x", p.image.front().height, " and ",
             image.width, "x", image.height, ")");
}

}  // namespace

double effective_strength(const GenerateParams& params) {
  if (params.strength) return *params.strength;
  return params.mask_image.empty() ? 0.8 : 1.0;
}

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
  check_images(p, num_images);
  if (p.clip_skip) KK_CHECK(*p.clip_skip >= 0, "`clip_skip` must be >= 0 but is ", *p.clip_skip);
  KK_CHECK(p.attention.slice_size >= 0, "attention slice size must be >= 0 but is ", p.attention.slice_size);
  KK_CHECK(p.vae_tile_size == 0 || (p.vae_tile_size >= 64 && p.vae_tile_size <= kMaxImageSide &&
                                    p.vae_tile_size % 8 == 0),
           "`vae_tile_size` must be 0 (the VAE's sample_size) or a multiple of 8 between 64 and ", kMaxImageSide,
           " but is ", p.vae_tile_size);
}

}  // namespace kakusan
