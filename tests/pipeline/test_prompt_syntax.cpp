// GenerateParams::prompt_syntax through the whole pipeline on the tiny model: A1111 syntax without any of its
// syntax is the diffusers result exactly (pad == eos, all weights 1), a weighted prompt changes the image, and a
// prompt past 77 tokens is encoded in chunks (no truncation warning, [.., 154, D] prompt embeddings).
#include <gtest/gtest.h>

#include "kakusan/pipeline.h"
#include "support/golden.h"

namespace kakusan {
namespace {

StableDiffusionPipeline& tiny() {
  static StableDiffusionPipeline pipe = StableDiffusionPipeline::load((*testing::golden_dir() / "tiny-sd").string());
  return pipe;
}

GenerateParams params(const std::string& prompt, PromptSyntax syntax) {
  GenerateParams p;
  p.prompt = {prompt};
  p.negative_prompt = {"blurry"};
  p.num_inference_steps = 3;
  p.seeds = {11};
  p.prompt_syntax = syntax;
  return p;
}

std::string long_prompt() {
  std::string text;
  for (int i = 0; i < 30; ++i) text += "lighthouse " + std::to_string(i) + ", ";
  return text;  // about 90 tokens
}

TEST(PromptSyntax, PlainTextIsTheDiffusersResult) {
  KK_REQUIRE_GOLDEN();
  const GenerateResult plain = tiny().generate(params("a red cube on a table", PromptSyntax::Diffusers));
  const GenerateResult a1111 = tiny().generate(params("a red cube on a table", PromptSyntax::A1111));
  EXPECT_TRUE(plain.images.at(0).rgb == a1111.images.at(0).rgb);
  EXPECT_EQ(plain.latents, a1111.latents);
}

TEST(PromptSyntax, WeightsChangeTheImage) {
  KK_REQUIRE_GOLDEN();
  const GenerateResult plain = tiny().generate(params("a red cube on a table", PromptSyntax::A1111));
  const GenerateResult weighted = tiny().generate(params("a (red:1.5) cube on a [table]", PromptSyntax::A1111));
  EXPECT_NE(plain.latents, weighted.latents);
}

TEST(PromptSyntax, LongPromptsAreEncodedInChunks) {
  KK_REQUIRE_GOLDEN();
  GenerateParams diffusers = params(long_prompt(), PromptSyntax::Diffusers);
  const GenerateResult cut = tiny().generate(diffusers);
  ASSERT_FALSE(cut.warnings.empty());
  EXPECT_NE(cut.warnings.back().find("truncated"), std::string::npos);

  GenerateParams a1111 = params(long_prompt(), PromptSyntax::A1111);
  std::vector<int64_t> embeds_shape;
  a1111.inspect = [&](const NamedTensor& t) {
    if (t.name == "prompt_embeds") embeds_shape = t.shape;
  };
  const GenerateResult chunked = tiny().generate(a1111);
  for (const std::string& w : chunked.warnings) EXPECT_EQ(w.find("truncated"), std::string::npos) << w;
  ASSERT_EQ(embeds_shape.size(), 3u);
  EXPECT_EQ(embeds_shape[0], 2);    // uncond, cond
  EXPECT_EQ(embeds_shape[1], 154);  // two chunks of 77
  EXPECT_NE(cut.latents, chunked.latents);
}

// The weighting is a host step between two backend phases: on a device whose memory is a separate heap
// (registered as "separate-heap" by test_pipeline_golden.cpp in this binary) the result is the CPU's.
TEST(PromptSyntax, WeightedChunksOnASeparateHeapDevice) {
  KK_REQUIRE_GOLDEN();
  LoadOptions options;
  options.device = "separate-heap";
  StableDiffusionPipeline device =
      StableDiffusionPipeline::load((*testing::golden_dir() / "tiny-sd").string(), options);
  const GenerateParams p = params("a (red:1.4) " + long_prompt() + " [table]", PromptSyntax::A1111);
  const GenerateResult on_device = device.generate(p);
  const GenerateResult on_cpu = tiny().generate(p);
  ASSERT_EQ(on_device.latents.size(), on_cpu.latents.size());
  for (size_t i = 0; i < on_cpu.latents.size(); ++i)
    ASSERT_NEAR(on_device.latents[i], on_cpu.latents[i], 1e-5) << "latent " << i;
}

}  // namespace
}  // namespace kakusan
