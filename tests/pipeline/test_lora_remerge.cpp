// A pipeline changes its LoRA set between generations (prompt tags, pipeline/lora_set.h): each generation must
// give, bit for bit, what a pipeline freshly loaded with that set gives, and going back to no tags the base
// model's result (the touched weights restored from the mapped files).
#include <gtest/gtest.h>

#include "core/error.h"
#include "kakusan/pipeline.h"
#include "pipeline_cases.h"

namespace kakusan {
namespace {

std::filesystem::path formats_dir() { return std::filesystem::path(KAKUSAN_SOURCE_DIR) / "tests/golden/formats"; }
std::string lora(const char* name) { return (formats_dir() / (std::string(name) + ".safetensors")).string(); }

GenerateParams params(const std::string& prompt) {
  GenerateParams p;
  p.prompt = {prompt};
  p.num_inference_steps = 3;
  p.seeds = {0};
  p.output_type = OutputType::Latent;
  return p;
}

std::vector<float> fresh(const std::vector<LoadOptions::Lora>& loras, const std::string& prompt,
                         WeightDType dtype = WeightDType::Auto) {
  LoadOptions load;
  load.loras = loras;
  load.dtype = dtype;
  return StableDiffusionPipeline::load((*testing::golden_dir() / "tiny-sd").string(), load).generate(params(prompt)).latents;
}

class LoraRemerge : public ::testing::TestWithParam<WeightDType> {};

TEST_P(LoraRemerge, EachGenerationEqualsAFreshLoadWithItsSet) {
  KK_REQUIRE_GOLDEN();
  LoadOptions load;
  load.lora_dir = formats_dir();
  load.loras = {{lora("lora_peft_b"), 0.3f}};  // a --lora that stays through every generation
  load.dtype = GetParam();
  StableDiffusionPipeline pipe = StableDiffusionPipeline::load((*testing::golden_dir() / "tiny-sd").string(), load);
  const std::string prompt = "portrait photo of a old warrior chief";
  struct Step {
    std::string tags;
    std::vector<LoadOptions::Lora> set;
  };
  const Step steps[] = {
      {"<lora:lora_kohya:0.8>", {{lora("lora_peft_b"), 0.3f}, {lora("lora_kohya"), 0.8f}}},
      {"<lora:lora_diffusers:-0.5>", {{lora("lora_peft_b"), 0.3f}, {lora("lora_diffusers"), -0.5f}}},
      {"<lora:lora_diffusers:-0.5>", {{lora("lora_peft_b"), 0.3f}, {lora("lora_diffusers"), -0.5f}}},  // unchanged
      {"", {{lora("lora_peft_b"), 0.3f}}},
  };
  std::vector<float> previous;
  std::string previous_tags = "(none yet)";
  for (const Step& step : steps) {
    const std::vector<float> got = pipe.generate(params(prompt + " " + step.tags)).latents;
    EXPECT_EQ(got, fresh(step.set, prompt + " ", GetParam())) << step.tags;
    if (step.tags != previous_tags) {
      EXPECT_NE(got, previous) << step.tags << ": the set changed, the result not";
    }
    previous = got;
    previous_tags = step.tags;
  }
}

INSTANTIATE_TEST_SUITE_P(Dtypes, LoraRemerge, ::testing::Values(WeightDType::Auto, WeightDType::F16));

TEST(LoraRemerge, AFailedChangeKeepsTheWeights) {
  KK_REQUIRE_GOLDEN();
  LoadOptions load;
  load.lora_dir = formats_dir();
  load.dtype = WeightDType::F16;
  StableDiffusionPipeline pipe = StableDiffusionPipeline::load((*testing::golden_dir() / "tiny-sd").string(), load);
  const std::vector<float> with_kohya = pipe.generate(params("a <lora:lora_kohya:0.8>")).latents;
  // A scale that overflows the merged fp16 weights fails before any weight changes ...
  EXPECT_THROW(pipe.generate(params("a <lora:lora_kohya:1e30>")), Error);
  EXPECT_THROW(pipe.generate(params("a <lora:unknown>")), Error);
  // ... so the same request as before needs no work and gives the same result.
  EXPECT_EQ(pipe.generate(params("a <lora:lora_kohya:0.8>")).latents, with_kohya);
}

}  // namespace
}  // namespace kakusan
