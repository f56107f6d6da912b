// A1111's <lora:NAME:W> prompt tags: what the parser takes out of a prompt, what it refuses, and how a batch's
// tags become one LoRA set (pipeline/lora_tags.h).
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "core/error.h"
#include "pipeline/lora_tags.h"

namespace kakusan {
namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(LoraTags, TakesTagsOutOfTheText) {
  const TaggedPrompt p = parse_lora_tags("a cat <lora:ink:0.8>, oil <lora:style_v2> painting");
  EXPECT_EQ(p.text, "a cat , oil  painting");
  ASSERT_EQ(p.tags.size(), 2u);
  EXPECT_EQ(p.tags[0].name, "ink");
  EXPECT_FLOAT_EQ(p.tags[0].weight, 0.8f);
  EXPECT_EQ(p.tags[1].name, "style_v2");
  EXPECT_FLOAT_EQ(p.tags[1].weight, 1.0f);  // A1111's default
}

TEST(LoraTags, SpacesAroundNameAndWeightAndNegativeWeights) {
  const TaggedPrompt p = parse_lora_tags("<lora: my lora : -0.5 >x");
  EXPECT_EQ(p.text, "x");
  ASSERT_EQ(p.tags.size(), 1u);
  EXPECT_EQ(p.tags[0].name, "my lora");  // file names may hold spaces
  EXPECT_FLOAT_EQ(p.tags[0].weight, -0.5f);
  EXPECT_FLOAT_EQ(parse_lora_tags("<lora:x:1e-3>").tags[0].weight, 1e-3f);
}

TEST(LoraTags, OtherAngleBracketsStayText) {
  for (const char* text : {"I <3 cats", "<hypernet:x:1>", "<LORA:x:1>", "a <lora x>", "<|endoftext|>", ""}) {
    const TaggedPrompt p = parse_lora_tags(text);
    EXPECT_EQ(p.text, text);
    EXPECT_TRUE(p.tags.empty()) << text;
  }
}

TEST(LoraTags, MalformedTagsAreOneLineErrorsNamingTheTag) {
  const std::pair<const char*, const char*> cases[] = {
      {"a <lora:x:0.8", "not closed"},
      {"<lora:>", "file name"},
      {"<lora: :1>", "file name"},
      {"<lora:x:>", "not a finite number"},
      {"<lora:x:abc>", "not a finite number"},
      {"<lora:x:0.8abc>", "not a finite number"},
      {"<lora:x:nan>", "not a finite number"},
      {"<lora:x:inf>", "not a finite number"},
      {"<lora:x:1e999>", "not a finite number"},
      {"<lora:x:0.5:0.8>", "no separate"},
      {"<lora:x:te=0.5>", "no separate"},
      {"<lora:../secret:1>", "file name"},
      {"<lora:a/b:1>", "file name"},
      {"<lora:a\\b:1>", "file name"},
      {"<lora:..:1>", "file name"},
      {"<lora:a\nb:1>", "file name"},
      {"<lora:a<lora:b:1>", "file name"},
  };
  for (const auto& [text, why] : cases) {
    const std::string message = error_of([&] { parse_lora_tags(text); });
    EXPECT_NE(message.find(why), std::string::npos) << text << " -> " << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << text;
    EXPECT_EQ(message.rfind("prompt tag '<lora:", 0), 0u) << message;
  }
}

TEST(LoraTags, HostilePromptsGiveShortErrors) {
  const std::string long_name(100000, 'a');
  const std::string message = error_of([&] { parse_lora_tags("<lora:" + long_name + ":1>"); });
  EXPECT_LT(message.size(), 300u);
  std::string many;
  for (int i = 0; i <= kMaxLoraTags; ++i) many += "<lora:x:0.1>";
  EXPECT_NE(error_of([&] { parse_lora_tags(many); }).find("more than 64"), std::string::npos);
  many.resize(many.size() - std::string("<lora:x:0.1>").size());
  EXPECT_EQ(parse_lora_tags(many).tags.size(), size_t(kMaxLoraTags));
}

class LoraFolder : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("kakusan_lora_tags_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_ / "sub");
    std::ofstream(dir_ / "ink.safetensors") << "x";
    std::ofstream(dir_ / "style.safetensors") << "x";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::filesystem::path dir_;
};

TEST_F(LoraFolder, ResolvesNamesInTheFolderAndHidesItInErrors) {
  EXPECT_EQ(resolve_lora_tag(dir_, "ink"), dir_ / "ink.safetensors");
  for (const char* name : {"missing", "sub"}) {
    const std::string message = error_of([&] { resolve_lora_tag(dir_, name); });
    EXPECT_NE(message.find("no LoRA of that name"), std::string::npos) << message;
    EXPECT_EQ(message.find(dir_.string()), std::string::npos) << "a client must not learn the server's folder";
  }
}

TEST_F(LoraFolder, ABatchSharesOneSetAndNegativeTagsAreDropped) {
  const PromptLoras got = take_lora_tags({"a <lora:ink:0.5> <lora:style>", "b <lora:style:1><lora:ink:0.5>"},
                                         {"blurry <lora:ink:2>"}, dir_);
  EXPECT_EQ(got.prompts, (std::vector<std::string>{"a  ", "b "}));
  EXPECT_EQ(got.negative_prompts, std::vector<std::string>{"blurry "});
  ASSERT_EQ(got.loras.size(), 2u);  // the first prompt's order
  EXPECT_EQ(got.loras[0].file, (dir_ / "ink.safetensors").string());
  EXPECT_FLOAT_EQ(got.loras[0].scale, 0.5f);
  EXPECT_EQ(got.loras[1].file, (dir_ / "style.safetensors").string());
  ASSERT_EQ(got.warnings.size(), 1u);
  EXPECT_NE(got.warnings[0].find("not applied"), std::string::npos);
}

TEST_F(LoraFolder, DifferentSetsInOneBatchAreRefused) {
  EXPECT_NE(error_of([&] { take_lora_tags({"a <lora:ink:0.5>", "b <lora:ink:0.6>"}, {}, dir_); })
                .find("prompts 1 and 2 carry different"),
            std::string::npos);
  EXPECT_NE(error_of([&] { take_lora_tags({"a", "b", "c <lora:ink>"}, {}, dir_); }).find("prompts 1 and 3"),
            std::string::npos);
}

TEST_F(LoraFolder, TagsNeedAFolderAndKnownNames) {
  EXPECT_NE(error_of([&] { take_lora_tags({"a <lora:ink>"}, {}, std::nullopt); }).find("--lora-dir"),
            std::string::npos);
  EXPECT_NE(error_of([&] { take_lora_tags({"a <lora:nope:1>"}, {}, dir_); }).find("'<lora:nope>'"),
            std::string::npos);
  // Without tags nothing is looked up, folder or not; negative tags alone need no folder.
  EXPECT_TRUE(take_lora_tags({"a"}, {"<lora:nope>"}, std::nullopt).loras.empty());
}

}  // namespace
}  // namespace kakusan
