// A1111 prompt syntax against diffusers' community lpw_stable_diffusion (goldens: tests/golden/lpw, made by
// make_lpw_golden.py): the parsed runs, the padded token ids and weights, and the weighted embeddings of the
// kit's tiny text encoder.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "core/arena.h"
#include "io/scratch_dir.h"
#include "io/safetensors.h"
#include "pipeline/prompt_attention.h"
#include "support/golden.h"

namespace kakusan {
namespace {

using nlohmann::json;

// The text encoder goldens' tolerance (manifest: text_encoder_* atol 5e-5, rtol 1e-5).
constexpr testing::Tolerance kEmbedsTolerance{5e-5, 1e-5};

std::filesystem::path lpw_dir() { return std::filesystem::path(KAKUSAN_SOURCE_DIR) / "tests" / "golden" / "lpw"; }

json read_json(const std::string& name) {
  std::ifstream in(lpw_dir() / name);
  return json::parse(in);
}

TEST(PromptAttention, ParsesAsLpwStableDiffusion) {
  const json cases = read_json("lpw_parse.json");
  ASSERT_GT(cases.size(), 10u);
  for (const json& c : cases) {
    const std::vector<WeightedRun> runs = parse_prompt_attention(c["prompt"].get<std::string>());
    ASSERT_EQ(runs.size(), c["runs"].size()) << c["prompt"];
    for (size_t i = 0; i < runs.size(); ++i) {
      EXPECT_EQ(runs[i].text, c["runs"][i][0].get<std::string>()) << c["prompt"];
      EXPECT_EQ(runs[i].weight, c["runs"][i][1].get<double>()) << c["prompt"] << " run " << i;  // same products
    }
  }
}

TEST(PromptAttention, ABadWeightIsAnError) {
  EXPECT_THROW(parse_prompt_attention("(word:1.2.3)"), Error);
  EXPECT_THROW(parse_prompt_attention("(word:.)"), Error);
}

// Prompts are untrusted (the server passes them through): long runs, deep and unbalanced nesting stay linear
// enough and never recurse.
TEST(PromptAttention, HostilePromptsParse) {
  EXPECT_EQ(parse_prompt_attention(std::string(1 << 20, 'a')).at(0).text.size(), size_t(1) << 20);
  std::string deep;
  for (int i = 0; i < 4000; ++i) deep += "(a";
  const std::vector<WeightedRun> runs = parse_prompt_attention(deep);
  ASSERT_FALSE(runs.empty());
  EXPECT_GT(runs.back().weight, 1e100);  // 1.1^4000 overflows to inf in lpw too; no crash either way
  EXPECT_EQ(parse_prompt_attention(std::string(5000, ')')).at(0).text.size(), 5000u);
  EXPECT_EQ(parse_prompt_attention("\\\\").at(0).text, "\\");  // an escaped backslash
  EXPECT_EQ(parse_prompt_attention("\\").at(0).text, "");          // a lone backslash is an empty run
  EXPECT_EQ(parse_prompt_attention("a\\").at(0).text, "a");
}

TEST(PromptAttention, TokensAndWeightsMatchLpw) {
  KK_REQUIRE_GOLDEN();
  const ClipTokenizer tokenizer = ClipTokenizer::load(*testing::golden_dir() / "tiny-sd" / "tokenizer");
  const json cases = read_json("lpw_tokens.json");
  for (const auto& [name, c] : cases.items()) {
    WeightedTokens cond, uncond;
    weighted_tokens(tokenizer, c["prompts"], c["negative_prompts"], cond, uncond);
    EXPECT_EQ(cond.ids, c["cond"]["ids"].get<std::vector<std::vector<int64_t>>>()) << name;
    EXPECT_EQ(uncond.ids, c["uncond"]["ids"].get<std::vector<std::vector<int64_t>>>()) << name;
    EXPECT_EQ(cond.weights, c["cond"]["weights"].get<std::vector<std::vector<float>>>()) << name;
    EXPECT_EQ(uncond.weights, c["uncond"]["weights"].get<std::vector<std::vector<float>>>()) << name;
  }
}

// The kit's tiny text encoder with the golden's final_layer_norm.bias (see make_lpw_golden.py: with the kit's
// zero bias the hidden states' mean is rounding noise, and lpw's rescale a ratio of noise).
ClipTextModel biased_text_encoder(const std::filesystem::path& kit_dir, const SafetensorsFile& golden,
                                  const testing::ScratchDir& scratch) {
  const std::string bias = "text_model.final_layer_norm.bias";
  const SafetensorsFile kit = SafetensorsFile::open(kit_dir / "model.safetensors");
  std::vector<std::pair<std::string, TensorView>> tensors;
  for (const SafetensorsFile::Entry& entry : kit.entries())
    tensors.emplace_back(entry.name, entry.name == bias ? golden.view(bias) : kit.view(entry.name));
  std::filesystem::copy_file(kit_dir / "config.json", scratch / "config.json");
  write_safetensors(scratch / "model.safetensors", tensors);
  return ClipTextModel::load(scratch.path());
}

TEST(PromptAttention, WeightedEmbeddingsMatchLpw) {
  KK_REQUIRE_GOLDEN();
  const std::filesystem::path tiny = *testing::golden_dir() / "tiny-sd";
  const ClipTokenizer tokenizer = ClipTokenizer::load(tiny / "tokenizer");
  const SafetensorsFile golden = SafetensorsFile::open(lpw_dir() / "lpw_embeds.safetensors");
  const testing::ScratchDir scratch;
  const ClipTextModel text_encoder = biased_text_encoder(tiny / "text_encoder", golden, scratch);
  const json cases = read_json("lpw_tokens.json");
  Arena arena;
  Context ctx{cpu_backend(), arena, {}};
  for (const auto& [name, c] : cases.items()) {
    WeightedTokens cond, uncond;
    weighted_tokens(tokenizer, c["prompts"], c["negative_prompts"], cond, uncond);
    KK_EXPECT_CLOSE(encode_weighted(ctx, tokenizer, text_encoder, cond), golden.view(name + ".cond"),
                    kEmbedsTolerance, name + ".cond");
    KK_EXPECT_CLOSE(encode_weighted(ctx, tokenizer, text_encoder, uncond), golden.view(name + ".uncond"),
                    kEmbedsTolerance, name + ".uncond");
  }
}

}  // namespace
}  // namespace kakusan
