// The 33 prompts of the golden kit (C.1), tokenized by transformers' slow CLIPTokenizer without ftfy.
#include <nlohmann/json.hpp>

#include "support/golden.h"
#include "support/golden_manifest.h"
#include "tokenizer/clip_tokenizer.h"

namespace kakusan {
namespace {

using testing::golden_case;

std::vector<int64_t> row(const TensorView& ids, int64_t i) {
  const TensorView r = ids[i];
  return std::vector<int64_t>(r.i64(), r.i64() + r.numel());
}

TEST(ClipTokenizerGolden, AllPromptsMatchTransformers) {
  KK_REQUIRE_GOLDEN();
  const nlohmann::json& tokenizer_case = golden_case("tokenizer");
  const nlohmann::json& prompts = tokenizer_case["params"]["prompts"];
  ASSERT_EQ(prompts.size(), 33u);

  const ClipTokenizer sd1 = ClipTokenizer::load(*testing::golden_dir() / "tiny-sd" / "tokenizer");
  const ClipTokenizer sd2 = ClipTokenizer::load(*testing::golden_dir() / "tiny-sd-v" / "tokenizer");
  EXPECT_EQ(sd1.pad_id(), tokenizer_case["params"]["pad_sd1"].get<int64_t>());
  EXPECT_EQ(sd2.pad_id(), tokenizer_case["params"]["pad_sd2"].get<int64_t>());
  EXPECT_EQ(sd1.bos_id(), tokenizer_case["params"]["bos"].get<int64_t>());
  EXPECT_EQ(sd1.eos_id(), tokenizer_case["params"]["eos"].get<int64_t>());

  const SafetensorsFile file = testing::open_golden("tokenizer/tokenizer.safetensors");
  const TensorView input_ids = file.view("input_ids");
  const TensorView attention_mask = file.view("attention_mask");
  const TensorView sd2_ids = file.view("input_ids_sd2_pad");

  for (const nlohmann::json& p : prompts) {
    const int64_t i = p["index"].get<int64_t>();
    const std::string prompt = p["prompt"].get<std::string>();
    SCOPED_TRACE("prompt " + std::to_string(i) + ": " + p["prompt"].dump());
    const TokenizedPrompt got = sd1.encode(prompt);
    EXPECT_EQ(got.tokens, p["bpe_tokens"].get<std::vector<std::string>>());
    EXPECT_EQ(got.input_ids, row(input_ids, i));
    EXPECT_EQ(got.attention_mask, row(attention_mask, i));
    char name[32];
    std::snprintf(name, sizeof name, "untruncated_%02d", int(i));
    const TensorView untruncated = file.view(name);
    EXPECT_EQ(got.untruncated_ids, std::vector<int64_t>(untruncated.i64(), untruncated.i64() + untruncated.numel()));
    EXPECT_EQ(int64_t(got.untruncated_ids.size()), p["num_tokens_untruncated"].get<int64_t>());
    EXPECT_EQ(sd2.encode(prompt).input_ids, row(sd2_ids, i));
  }
}

// The text-encoder goldens (C.3) were computed from these tokenizers' ids: the pipeline's two halves agree.
TEST(ClipTokenizerGolden, TextEncoderInputsMatch) {
  KK_REQUIRE_GOLDEN();
  for (const std::string model : {"tiny-sd", "tiny-sd-v"}) {
    SCOPED_TRACE(model);
    const nlohmann::json& encoder_case = golden_case("text_encoder_" + model);
    const ClipTokenizer tok = ClipTokenizer::load(*testing::golden_dir() / model / "tokenizer");
    const SafetensorsFile file = testing::open_golden("components/text_encoder_" + model + ".safetensors");
    const TensorView input_ids = file.view("input_ids");
    const nlohmann::json& prompts = encoder_case["params"]["prompts"];
    ASSERT_EQ(int64_t(prompts.size()), input_ids.dim(0));
    for (size_t i = 0; i < prompts.size(); ++i)
      EXPECT_EQ(tok.encode(prompts[i].get<std::string>()).input_ids, row(input_ids, int64_t(i))) << prompts[i].dump();
  }
}

}  // namespace
}  // namespace kakusan
