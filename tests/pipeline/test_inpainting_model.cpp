// make-random-model's inpainting layout through the pipeline: a 9-channel UNet written by
// make_random_model("tiny-inpaint") loads, inpaints, and refuses a request without a mask; the sd15 variant
// has runwayml/stable-diffusion-inpainting's conv_in.
#include <gtest/gtest.h>

#include <filesystem>

#include "io/safetensors.h"
#include "kakusan/pipeline.h"
#include "models/random_model.h"
#include "support/golden.h"
#include "../io/scratch_dir.h"

namespace kakusan {
namespace {

namespace fs = std::filesystem;

TEST(InpaintingModel, RandomTinyInpaintLoadsAndInpaints) {
  KK_REQUIRE_GOLDEN();
  testing::ScratchDir dir;
  make_random_model(RandomModelSpec::builtin("tiny-inpaint"), dir.path(), DType::F32, 3);
  fs::create_directory_symlink(*testing::golden_dir() / "tiny-sd" / "tokenizer", dir / "tokenizer");
  const SafetensorsFile unet = SafetensorsFile::open(dir / "unet/diffusion_pytorch_model.safetensors");
  ASSERT_NE(unet.find("conv_in.weight"), nullptr);
  EXPECT_EQ(unet.find("conv_in.weight")->shape, Shape({32, 9, 3, 3}));

  StableDiffusionPipeline pipe = StableDiffusionPipeline::load(dir.path().string());
  const fs::path inputs = fs::path(KAKUSAN_SOURCE_DIR) / "tests" / "golden" / "img2img";
  GenerateParams params;
  params.prompt = {"a cat"};
  params.num_inference_steps = 4;
  params.seeds = {0};
  params.strength = 0.75;
  params.image = {read_image(inputs / "input_100x70.png")};
  params.mask_image = {read_image(inputs / "input_100x70.png")};  // any picture works as a mask
  const GenerateResult result = pipe.generate(params);
  ASSERT_EQ(result.images.size(), 1u);
  EXPECT_EQ(result.images[0].width, 96);
  EXPECT_EQ(result.images[0].height, 64);

  GenerateParams text_only = params;
  text_only.mask_image.clear();
  try {
    pipe.generate(text_only);
    ADD_FAILURE() << "an inpainting UNet ran without a mask";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("inpainting UNet"), std::string::npos) << e.what();
  }
}

TEST(InpaintingModel, Sd15InpaintHasNineInputChannels) {
  const RandomModelSpec spec = RandomModelSpec::builtin("sd15-inpaint");
  EXPECT_EQ(spec.unet["in_channels"], 9);
  EXPECT_EQ(spec.unet["out_channels"], 4);
  EXPECT_EQ(spec.model_index["_class_name"], "StableDiffusionInpaintPipeline");
  EXPECT_EQ(RandomModelSpec::builtin("sd15").unet["in_channels"], 4);
}

}  // namespace
}  // namespace kakusan
