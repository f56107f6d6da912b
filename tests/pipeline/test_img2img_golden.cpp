// Image-to-image and inpainting against diffusers' StableDiffusionImg2ImgPipeline and
// StableDiffusionInpaintPipeline (tests/golden/img2img/make_goldens.py) on the kit's tiny-sd: two strengths
// with a deterministic and a stochastic scheduler, second-order schedulers (Heun, KDPM2 ancestral) starting
// mid-schedule, per-image generators, one generator for two images,
// a non-square image resized by the preprocessor, inpainting with a 4-channel and a 9-channel UNet at
// strength 1 and 0.75. Latents and per-step latents within the kit's pipeline tolerances (rtol/atol 1e-3),
// images within 2e-3.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include "io/png.h"
#include "io/safetensors.h"
#include "kakusan/pipeline.h"
#include "support/golden.h"
#include "support/separate_heap_backend.h"
#include "../io/scratch_dir.h"

namespace kakusan {
namespace {

using testing::Tolerance;
namespace fs = std::filesystem;

const fs::path kHere = fs::path(KAKUSAN_SOURCE_DIR) / "tests" / "golden" / "img2img";
const Tolerance kLatents{1e-3, 1e-3};
const Tolerance kImage{2e-3, 0};
const char* kPrompt = "portrait photo of a old warrior chief";

// tiny-sd with the committed 9-channel UNet in place of its own (links to the kit's other components).
const fs::path& inpainting_model() {
  static testing::ScratchDir dir;
  static bool made = false;
  if (!made) {
    const fs::path kit = *testing::golden_dir() / "tiny-sd";
    fs::copy_file(kit / "model_index.json", dir / "model_index.json");
    for (const char* component : {"text_encoder", "tokenizer", "vae", "scheduler"})
      fs::create_directory_symlink(kit / component, dir / component);
    fs::create_directory_symlink(kHere / "tiny-inpaint-unet", dir / "unet");
    made = true;
  }
  return dir.path();
}

// As the kit's cases, every case also runs on a backend whose memory is a separate heap: the image steps
// touch the VAE's and UNet's memory only through the backend.
const char* const kSeparateHeap = "separate-heap-img2img";
const bool separate_heap_registered = [] {
  testing::registered_separate_heap(kSeparateHeap);
  return true;
}();

StableDiffusionPipeline& pipeline(bool inpainting_unet, const std::string& scheduler, const std::string& device) {
  static std::map<std::pair<bool, std::string>, std::unique_ptr<StableDiffusionPipeline>> cache;
  auto& pipe = cache[{inpainting_unet, device}];
  if (!pipe) {
    const fs::path model = inpainting_unet ? inpainting_model() : *testing::golden_dir() / "tiny-sd";
    LoadOptions load;
    load.device = device;
    pipe = std::make_unique<StableDiffusionPipeline>(StableDiffusionPipeline::load(model.string(), load));
  }
  pipe->set_scheduler(scheduler);
  return *pipe;
}

Image picture(const char* name) { return read_png(kHere / name).image; }

struct Case {
  std::string name;
  std::string scheduler;
  bool inpainting_unet = false;
  GenerateParams params;
};

Case make_case(std::string name, std::string scheduler, double strength, std::vector<uint64_t> seeds,
               bool mask = false, bool inpainting_unet = false) {
  Case c{std::move(name), std::move(scheduler), inpainting_unet, {}};
  c.params.prompt = {kPrompt};
  c.params.num_inference_steps = 10;
  c.params.strength = strength;
  c.params.seeds = std::move(seeds);
  c.params.image = {picture("input_64x64.png")};
  if (mask) c.params.mask_image = {picture("mask_64x64.png")};
  return c;
}

std::vector<Case> cases() {
  std::vector<Case> all;
  all.push_back(make_case("i2i_dpm_s075", "DPMSolverMultistepScheduler", 0.75, {0}));
  all.push_back(make_case("i2i_dpm_s040", "DPMSolverMultistepScheduler", 0.4, {0}));
  all.push_back(make_case("i2i_eulera_s075", "EulerAncestralDiscreteScheduler", 0.75, {0}));
  all.push_back(make_case("i2i_eulera_s040", "EulerAncestralDiscreteScheduler", 0.4, {0}));
  Case batch = make_case("i2i_batch_generators", "EulerAncestralDiscreteScheduler", 0.75, {1, 2});
  batch.params.prompt = {kPrompt, "a red car"};
  all.push_back(batch);
  Case x2 = make_case("i2i_one_generator_x2", "EulerAncestralDiscreteScheduler", 0.75, {3});
  x2.params.num_images_per_prompt = 2;
  all.push_back(x2);
  all.push_back(make_case("i2i_heun_s060", "HeunDiscreteScheduler", 0.6, {0}));
  all.push_back(make_case("i2i_kdpm2a_s050", "KDPM2AncestralDiscreteScheduler", 0.5, {0}));
  Case wide = make_case("i2i_pndm_96x64", "PNDMScheduler", 0.6, {0});
  wide.params.image = {picture("input_100x70.png")};
  all.push_back(wide);
  all.push_back(make_case("inpaint4_pndm_s100", "PNDMScheduler", 1.0, {0}, true));
  all.push_back(make_case("inpaint4_dpm_s075", "DPMSolverMultistepScheduler", 0.75, {0}, true));
  all.push_back(make_case("inpaint9_pndm_s100", "PNDMScheduler", 1.0, {0}, true, true));
  all.push_back(make_case("inpaint9_eulera_s075", "EulerAncestralDiscreteScheduler", 0.75, {0}, true, true));
  return all;
}

void check_case(const Case& c, const std::string& device) {
  std::map<std::string, Tensor> seen;
  GenerateParams params = c.params;
  params.inspect = [&](const NamedTensor& t) {
    seen.emplace(std::string(t.name),
                 Tensor::copy_of(TensorView(const_cast<float*>(t.data), Shape(t.shape.begin(), t.shape.end()))));
  };
  int denoising_total = -1;
  params.progress = [&](const Progress& progress) {
    if (progress.phase == Phase::Denoising) denoising_total = progress.total;
  };
  const GenerateResult result = pipeline(c.inpainting_unet, c.scheduler, device).generate(params);
  const SafetensorsFile want = SafetensorsFile::open(kHere / (c.name + ".safetensors"));
  if (want.contains("init_image")) {
    KK_EXPECT_CLOSE(seen.at("init_image"), want.view("init_image"), Tolerance{1e-6, 0}, c.name + " init_image");
  }
  // Per step, so that a mismatch shows where it starts (step i of the loop, which starts at first_step).
  const TensorView steps = want.view("latents_after_step");  // [T, B, C, h, w]
  const Shape step_shape(steps.shape.begin() + 1, steps.shape.end());
  int first = 0;
  while (first < 1000 && !seen.count("latents_after_step" + std::to_string(first))) ++first;
  for (int64_t i = 0; i < steps.dim(0); ++i) {
    const auto it = seen.find("latents_after_step" + std::to_string(first + i));
    ASSERT_NE(it, seen.end()) << c.name << ": the loop ran fewer steps than diffusers' " << steps.dim(0);
    const TensorView want_step(steps.f32() + i * step_shape.numel(), step_shape);
    ASSERT_TRUE(testing::tensors_close(it->second, want_step, kLatents, c.name + " step " + std::to_string(i)));
  }
  EXPECT_FALSE(seen.count("latents_after_step" + std::to_string(first + steps.dim(0))))
      << c.name << ": the loop ran more steps than diffusers";
  EXPECT_EQ(denoising_total, steps.dim(0)) << "the progress bar counts the steps that run";
  const Shape latents_shape(result.latents_shape.begin(), result.latents_shape.end());
  KK_EXPECT_CLOSE(TensorView(const_cast<float*>(result.latents.data()), latents_shape), want.view("latents"),
                  kLatents, c.name + " latents");
  const Shape image_shape(result.image_shape.begin(), result.image_shape.end());
  KK_EXPECT_CLOSE(TensorView(const_cast<float*>(result.image_tensor.data()), image_shape), want.view("image"),
                  kImage, c.name + " image");
}

class ImageToImageGolden : public ::testing::TestWithParam<Case> {};

TEST_P(ImageToImageGolden, MatchesDiffusers) {
  KK_REQUIRE_GOLDEN();
  check_case(GetParam(), "cpu");
}

TEST_P(ImageToImageGolden, MatchesDiffusersOnASeparateHeapDevice) {
  KK_REQUIRE_GOLDEN();
  ASSERT_TRUE(separate_heap_registered);
  check_case(GetParam(), kSeparateHeap);
}

INSTANTIATE_TEST_SUITE_P(Diffusers, ImageToImageGolden, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<Case>& info) { return info.param.name; });

}  // namespace
}  // namespace kakusan
