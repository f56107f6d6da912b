// check_inputs for image-to-image and inpainting: strength range and defaults, the steps strength leaves,
// image and mask counts and sizes, a malformed Image.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>

#include "core/error.h"
#include "kakusan/pipeline.h"

namespace kakusan {
namespace {

Image picture(int width, int height) { return Image{width, height, std::vector<uint8_t>(size_t(width) * height * 3)}; }

GenerateParams img2img() {
  GenerateParams p;
  p.prompt = {"a cat"};
  p.num_inference_steps = 10;
  p.image = {picture(64, 48)};
  return p;
}

std::string error_of(const GenerateParams& p) {
  try {
    check_inputs(p);
    return "";
  } catch (const Error& e) {
    return e.what();
  }
}

TEST(CheckImageInputs, StrengthDefaultsAndRange) {
  GenerateParams p = img2img();
  EXPECT_EQ(error_of(p), "");
  EXPECT_EQ(effective_strength(p), 0.8);  // StableDiffusionImg2ImgPipeline's default
  p.mask_image = {picture(64, 48)};
  EXPECT_EQ(effective_strength(p), 1.0);  // StableDiffusionInpaintPipeline's default
  EXPECT_EQ(error_of(p), "");
  for (const double bad : {-0.01, 1.01, std::numeric_limits<double>::quiet_NaN()}) {
    p.strength = bad;
    EXPECT_NE(error_of(p).find("The value of strength should in [0.0, 1.0]"), std::string::npos) << bad;
  }
  p.strength = 0.0;  // int(10 * 0) = 0 steps
  EXPECT_NE(error_of(p).find("the number of pipeline steps is 0"), std::string::npos) << error_of(p);
  p.strength = 0.1;  // exactly one step
  EXPECT_EQ(error_of(p), "");
  p.num_inference_steps = 9;  // int(0.9) = 0
  EXPECT_NE(error_of(p).find("number of pipeline steps is 0"), std::string::npos);
  GenerateParams text = img2img();
  text.image.clear();
  text.strength = 0.5;
  EXPECT_NE(error_of(text).find("`strength` is given without `image`"), std::string::npos);
}

TEST(CheckImageInputs, ImageAndMaskCountsAndSizes) {
  GenerateParams p = img2img();
  p.prompt = {"a", "b"};
  p.image = {picture(64, 48), picture(64, 48)};  // one per image
  EXPECT_EQ(error_of(p), "");
  p.image.push_back(picture(64, 48));
  EXPECT_NE(error_of(p).find("`image` has 3 pictures for 2 generated images"), std::string::npos) << error_of(p);
  p.image = {picture(64, 48), picture(32, 48)};
  EXPECT_NE(error_of(p).find("differ in size"), std::string::npos) << error_of(p);
  p.image = {picture(64, 48)};
  p.mask_image = {picture(64, 40)};
  EXPECT_NE(error_of(p).find("the mask is 64x40 but the image is 64x48"), std::string::npos) << error_of(p);
  p.mask_image = {picture(64, 48), picture(64, 48)};
  EXPECT_NE(error_of(p).find("`mask_image` has 2 masks for 1 images"), std::string::npos) << error_of(p);
  GenerateParams mask_only = img2img();
  mask_only.mask_image = mask_only.image;
  mask_only.image.clear();
  EXPECT_NE(error_of(mask_only).find("`mask_image` is given without `image`"), std::string::npos);
}

TEST(CheckImageInputs, MalformedOrOversizedImages) {
  GenerateParams p = img2img();
  p.image = {Image{4, 4, std::vector<uint8_t>(10)}};
  EXPECT_NE(error_of(p).find("holds 10 bytes"), std::string::npos) << error_of(p);
  p.image = {Image{0, 4, {}}};
  EXPECT_NE(error_of(p).find("sides must be between 1 and"), std::string::npos) << error_of(p);
  p.image = {picture(kMaxImageSide + 1, 1)};
  EXPECT_NE(error_of(p).find("sides must be between 1 and"), std::string::npos) << error_of(p);
}

}  // namespace
}  // namespace kakusan
