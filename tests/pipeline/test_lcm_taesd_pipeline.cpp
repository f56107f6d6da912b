// The fast recipe's pieces in the whole pipeline, against diffusers 0.29.2 (tests/golden/lcm and
// tests/golden/taesd, from tests/golden/lcm/make_goldens.py; tests/golden/lcm_lora/make_golden.py): the kit's
// tiny-sd with LCMScheduler, 4 steps, guidance 1 (no classifier-free guidance) and 2 (with it), with an
// LCM-LoRA-shaped LoRA fused, and with the tiny TAESD as its VAE.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>

#include "io/safetensors.h"
#include "kakusan/pipeline.h"
#include "support/golden.h"

namespace kakusan {
namespace {

using testing::Tolerance;

const std::filesystem::path kSource(KAKUSAN_SOURCE_DIR);
// The kit's pipeline tolerances (manifest: latents rtol/atol 1e-3, images atol 2e-3).
constexpr Tolerance kLatents{1e-3, 1e-3};
constexpr Tolerance kImage{2e-3, 0};

Tensor tensor_of(const NamedTensor& t) {
  return Tensor::copy_of(TensorView(const_cast<float*>(t.data), Shape(t.shape.begin(), t.shape.end())));
}

void check_case(const std::optional<std::string>& vae, double guidance, const std::filesystem::path& golden,
                const std::vector<LoadOptions::Lora>& loras = {}) {
  LoadOptions load;
  load.scheduler = "LCMScheduler";
  load.vae = vae;
  load.loras = loras;
  StableDiffusionPipeline pipe = StableDiffusionPipeline::load((*testing::golden_dir() / "tiny-sd").string(), load);
  GenerateParams params;
  params.prompt = {"portrait photo of a old warrior chief"};
  params.seeds = {0};
  params.num_inference_steps = 4;
  params.guidance_scale = guidance;
  params.height = params.width = 64;
  std::map<std::string, Tensor> seen;
  params.inspect = [&](const NamedTensor& t) { seen.emplace(std::string(t.name), tensor_of(t)); };
  const GenerateResult result = pipe.generate(params);
  const SafetensorsFile want = SafetensorsFile::open(golden);

  KK_EXPECT_CLOSE(seen.at("timesteps"), want.view("timesteps"), Tolerance{}, "timesteps");
  const TensorView steps = want.view("latents_after_step");
  for (int64_t i = 0; i < steps.dim(0); ++i)
    KK_EXPECT_CLOSE(seen.at("latents_after_step" + std::to_string(i)), steps.slice0(i, i + 1).reshape(
                        Shape(steps.shape.begin() + 1, steps.shape.end())),
                    kLatents, "latents after step " + std::to_string(i));
  const Shape latents_shape(result.latents_shape.begin(), result.latents_shape.end());
  KK_EXPECT_CLOSE(TensorView(const_cast<float*>(result.latents.data()), latents_shape), want.view("latents"), kLatents,
                  "latents");
  const Shape image_shape(result.image_shape.begin(), result.image_shape.end());
  KK_EXPECT_CLOSE(TensorView(const_cast<float*>(result.image_tensor.data()), image_shape), want.view("image"), kImage,
                  "image");
}

TEST(LcmPipelineGolden, FourStepsGuidanceOne) {
  KK_REQUIRE_GOLDEN();
  check_case(std::nullopt, 1.0, kSource / "tests/golden/lcm/pipe_lcm_g1.safetensors");
}

TEST(LcmPipelineGolden, FourStepsGuidanceTwo) {
  KK_REQUIRE_GOLDEN();
  check_case(std::nullopt, 2.0, kSource / "tests/golden/lcm/pipe_lcm_g2.safetensors");
}

// The documented recipe, `--lora lcm-lora-sdv1-5.safetensors --scheduler LCMScheduler --steps 4 --guidance 1`,
// with a tiny LoRA in that file's layout (tests/golden/lcm_lora/make_golden.py: kohya names, fp16, alphas, the
// convolutions, shortcuts, samplers and time projections too), against load_lora_weights + fuse_lora.
TEST(LcmPipelineGolden, LcmLoraFourStepsGuidanceOne) {
  KK_REQUIRE_GOLDEN();
  const std::filesystem::path dir = kSource / "tests/golden/lcm_lora";
  check_case(std::nullopt, 1.0, dir / "pipe_lcm_lora.safetensors", {{(dir / "lcm_lora_tiny.safetensors").string()}});
}

TEST(LcmPipelineGolden, TinyAutoencoderAsVae) {
  KK_REQUIRE_GOLDEN();
  check_case((kSource / "tests/golden/taesd/tiny-taesd").string(), 1.0,
             kSource / "tests/golden/taesd/pipe_taesd.safetensors");
}

}  // namespace
}  // namespace kakusan
