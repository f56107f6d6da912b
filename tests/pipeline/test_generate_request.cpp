// generate_params(): the one builder of GenerateParams that the CLI and the C API share.
#include <gtest/gtest.h>

#include <string>

#include "core/error.h"
#include "pipeline/generate_request.h"

namespace kakusan {
namespace {

GenerateRequest one_prompt() {
  GenerateRequest r;
  r.prompts = {"a red apple"};
  return r;
}

TEST(GenerateRequest, DefaultsAreGenerateParamsDefaults) {
  const GenerateParams got = generate_params(one_prompt());
  const GenerateParams want;
  EXPECT_EQ(got.num_inference_steps, want.num_inference_steps);
  EXPECT_EQ(got.guidance_scale, want.guidance_scale);
  EXPECT_EQ(got.num_images_per_prompt, want.num_images_per_prompt);
  EXPECT_EQ(got.memory_policy, want.memory_policy);
  EXPECT_FALSE(got.stream_unet_weights);
  EXPECT_FALSE(got.vae_tiling);
  EXPECT_EQ(got.prompt, std::vector<std::string>{"a red apple"});
}

TEST(GenerateRequest, LowMemoryPullsItsLevers) {
  GenerateRequest r = one_prompt();
  r.low_memory = true;
  GenerateParams p = generate_params(r);
  EXPECT_TRUE(p.stream_unet_weights);
  EXPECT_TRUE(p.vae_tiling);
  EXPECT_EQ(p.vae_tile_size, kLowMemoryVaeTile);
  r.vae_tile_size = 512;  // a size given explicitly is kept
  p = generate_params(r);
  EXPECT_EQ(p.vae_tile_size, 512);
}

TEST(GenerateRequest, ChecksTheInputsWithTheirMessages) {
  GenerateRequest r = one_prompt();
  r.num_inference_steps = 0;
  try {
    generate_params(r);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("`num_inference_steps` must be at least 1 but is 0"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace kakusan
