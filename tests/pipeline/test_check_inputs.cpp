#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "core/error.h"
#include "kakusan/pipeline.h"

namespace kakusan {
namespace {

GenerateParams valid_params() {
  GenerateParams p;
  p.prompt = {"portrait photo of a old warrior chief"};
  return p;
}

// Runs check_inputs and returns its error message ("" if it accepted the params).
std::string error_of(const GenerateParams& p) {
  try {
    check_inputs(p);
    return "";
  } catch (const Error& e) {
    return e.what();
  }
}

TEST(CheckInputs, AcceptsDefaultsAndDiffusersExamples) {
  EXPECT_EQ(error_of(valid_params()), "");
  GenerateParams p = valid_params();
  p.prompt = {"a", "b", "c", "d"};
  p.seeds = {1, 1, 1, 1};  // the tutorial: one generator per image
  p.height = p.width = 64;
  EXPECT_EQ(error_of(p), "");
  p.seeds = {7};  // one generator shared by the batch
  EXPECT_EQ(error_of(p), "");
  p.negative_prompt = {"blurry"};  // one for all prompts
  EXPECT_EQ(error_of(p), "");
}

TEST(CheckInputs, RejectsMissingPrompt) {
  GenerateParams p;
  EXPECT_NE(error_of(p).find("`prompt` is empty"), std::string::npos);
}

TEST(CheckInputs, RejectsSizesNotMultipleOf8OrOutOfRange) {
  GenerateParams p = valid_params();
  p.height = 60;
  EXPECT_NE(error_of(p).find("divisible by 8"), std::string::npos);
  p.height = 64;
  p.width = 65;
  EXPECT_NE(error_of(p).find("`width`"), std::string::npos);
  p.width = -8;
  EXPECT_NE(error_of(p), "");
  p.width = kMaxImageSide + 8;
  EXPECT_NE(error_of(p).find("between 8 and"), std::string::npos);
}

TEST(CheckInputs, RejectsBadNumbers) {
  GenerateParams p = valid_params();
  p.num_inference_steps = 0;
  EXPECT_NE(error_of(p).find("num_inference_steps"), std::string::npos);
  p = valid_params();
  p.guidance_scale = std::numeric_limits<double>::quiet_NaN();
  EXPECT_NE(error_of(p).find("guidance_scale"), std::string::npos);
  p.guidance_scale = std::numeric_limits<double>::infinity();
  EXPECT_NE(error_of(p).find("guidance_scale"), std::string::npos);
  p = valid_params();
  p.guidance_rescale = 1.5;
  EXPECT_NE(error_of(p).find("guidance_rescale"), std::string::npos);
  p = valid_params();
  p.eta = -1;
  EXPECT_NE(error_of(p).find("eta"), std::string::npos);
  p = valid_params();
  p.num_images_per_prompt = 0;
  EXPECT_NE(error_of(p).find("num_images_per_prompt"), std::string::npos);
  p.num_images_per_prompt = kMaxImagesPerCall + 1;
  EXPECT_NE(error_of(p).find("too many images"), std::string::npos);
  p = valid_params();
  p.clip_skip = -1;
  EXPECT_NE(error_of(p).find("clip_skip"), std::string::npos);
}

TEST(CheckInputs, SeedCountMustMatchImageCount) {
  GenerateParams p = valid_params();
  p.prompt = {"a", "b"};
  p.num_images_per_prompt = 2;
  p.seeds = {1, 2, 3};
  const std::string message = error_of(p);
  EXPECT_NE(message.find("3 seeds"), std::string::npos) << message;
  EXPECT_NE(message.find("4 images"), std::string::npos) << message;
  p.seeds = {1, 2, 3, 4};
  EXPECT_EQ(error_of(p), "");
}

TEST(CheckInputs, GeneratorIndexNamesSeeds) {
  GenerateParams p = valid_params();
  p.prompt = {"a", "b"};
  p.seeds = {1};
  p.generator_index = {0, 0};
  EXPECT_EQ(error_of(p), "");
  p.generator_index = {0, 1};
  EXPECT_NE(error_of(p).find("generator_index"), std::string::npos);
  p.generator_index = {0};
  EXPECT_NE(error_of(p).find("generator_index"), std::string::npos);
}

TEST(CheckInputs, NegativePromptCount) {
  GenerateParams p = valid_params();
  p.prompt = {"a", "b", "c"};
  p.negative_prompt = {"x", "y"};
  EXPECT_NE(error_of(p).find("negative_prompt"), std::string::npos);
  p.negative_prompt = {"x", "y", "z"};
  EXPECT_EQ(error_of(p), "");
}

TEST(PhaseName, NamesEveryPhase) {
  EXPECT_STREQ(phase_name(Phase::Loading), "loading");
  EXPECT_STREQ(phase_name(Phase::Encoding), "encoding");
  EXPECT_STREQ(phase_name(Phase::Denoising), "denoising");
  EXPECT_STREQ(phase_name(Phase::Decoding), "decoding");
}

}  // namespace
}  // namespace kakusan
