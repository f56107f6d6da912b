// LoRA and textual inversion against diffusers (tests/golden/formats/make_goldens.py): the kit's case b
// (tiny-sd, DPM++ 20 steps, seed 0) with each LoRA format at two scales, two LoRAs at once, and embeddings;
// latents within the kit's pipeline tolerance.
#include <gtest/gtest.h>

#include "core/error.h"
#include "kakusan/pipeline.h"
#include "pipeline_cases.h"

namespace kakusan {
namespace {

using testing::PipelineCase;

std::filesystem::path formats_dir() { return std::filesystem::path(KAKUSAN_SOURCE_DIR) / "tests/golden/formats"; }

PipelineCase case_b() {
  for (const PipelineCase& c : testing::load_pipeline_cases())
    if (c.name == "b_dpm20") return c;
  throw Error("no pipeline case b_dpm20");
}

std::vector<float> latents_with(const LoadOptions& load, GenerateParams params) {
  params.output_type = OutputType::Latent;
  return StableDiffusionPipeline::load(case_b().model, load).generate(params).latents;
}

void expect_case(const std::string& golden, const std::string& name, const LoadOptions& load,
                 const GenerateParams& params) {
  const PipelineCase c = case_b();
  const SafetensorsFile want = SafetensorsFile::open(formats_dir() / golden);
  std::vector<float> got = latents_with(load, params);
  const TensorView want_view = want.view(name);
  ASSERT_EQ(int64_t(got.size()), want_view.numel()) << name;
  KK_EXPECT_CLOSE(TensorView(got.data(), want_view.shape), want_view, c.latents_tolerance, name);
}

class LoraGolden : public ::testing::TestWithParam<std::tuple<std::string, float>> {};

TEST_P(LoraGolden, MatchesDiffusersFuseLora) {
  KK_REQUIRE_GOLDEN();
  const auto& [format, scale] = GetParam();
  const PipelineCase c = case_b();
  LoadOptions load = c.load;
  load.loras = {{(formats_dir() / ("lora_" + format + ".safetensors")).string(), scale}};
  char name[64];
  std::snprintf(name, sizeof name, "%s_%.1f", format.c_str(), scale);
  expect_case("lora_cases.safetensors", name, load, c.params);
}

INSTANTIATE_TEST_SUITE_P(Formats, LoraGolden,
                         ::testing::Combine(::testing::Values("kohya", "peft", "diffusers"),
                                            ::testing::Values(1.0f, 0.5f)));

TEST(Lora, TwoAdaptersAddUpAsSetAdapters) {
  KK_REQUIRE_GOLDEN();
  const PipelineCase c = case_b();
  LoadOptions load = c.load;
  load.loras = {{(formats_dir() / "lora_kohya.safetensors").string(), 0.7f},
                {(formats_dir() / "lora_peft_b.safetensors").string(), 0.4f}};
  expect_case("lora_cases.safetensors", "kohya_0.7+peft_b_0.4", load, c.params);
}

TEST(Lora, WithoutLorasTheBaseLatents) {
  KK_REQUIRE_GOLDEN();
  const PipelineCase c = case_b();
  expect_case("lora_cases.safetensors", "base", c.load, c.params);
}

}  // namespace
}  // namespace kakusan

namespace kakusan {
namespace {

TEST(TextualInversion, DiffusersAndA1111EmbeddingsMatchLoadTextualInversion) {
  KK_REQUIRE_GOLDEN();
  const PipelineCase c = case_b();
  LoadOptions load = c.load;
  load.embeddings = {{(formats_dir() / "embedding_diffusers.safetensors").string(), std::nullopt}};
  GenerateParams params = c.params;
  params.prompt = {"portrait photo of a <kk-one> warrior chief"};
  expect_case("embedding_cases.safetensors", "diffusers", load, params);
  // Two vectors: "<kk-two>" becomes "<kk-two> <kk-two>_1".
  load.embeddings = {{(formats_dir() / "embedding_a1111.safetensors").string(), "<kk-two>"}};
  params.prompt = {"portrait photo of a <kk-two> warrior chief"};
  expect_case("embedding_cases.safetensors", "a1111", load, params);
}

TEST(TextualInversion, ATokenOfTheVocabularyIsRefused) {
  KK_REQUIRE_GOLDEN();
  LoadOptions load = case_b().load;
  load.embeddings = {{(formats_dir() / "embedding_diffusers.safetensors").string(), "cat</w>"}};
  try {
    StableDiffusionPipeline::load(case_b().model, load);
    FAIL() << "a vocabulary token was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("already in the tokenizer's vocabulary"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace kakusan
