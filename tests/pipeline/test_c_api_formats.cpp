// The C API's model-file fields (kakusan_load_params: config / tokenizer for a single-file checkpoint, LoRA files
// and scales, the LoRA folder of prompt tags, embeddings): one context with all of them gives the image
// `kakusan generate` gives with the same flags, pixel for pixel, and bad fields are a status and a message.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstring>

#include "io/png.h"
#include "io/scratch_dir.h"
#include "c_api_params.h"
#include "kakusan/kakusan.h"
#include "single_file_builder.h"
#include "support/child_process.h"
#include "support/golden.h"

namespace kakusan {
namespace {

std::string formats(const std::string& file) {
  return (std::filesystem::path(KAKUSAN_SOURCE_DIR) / "tests/golden/formats" / file).string();
}

TEST(CApiFormats, SingleFileLorasTagsAndEmbeddingsAsTheCli) {
  KK_REQUIRE_GOLDEN();
  const testing::ScratchDir dir;
  const std::string file = (dir / "tiny-sd.safetensors").string(), kit = (*testing::golden_dir() / "tiny-sd").string();
  testing::build_single_file("tiny-sd", file);

  const std::string lora_path = formats("lora_peft_b.safetensors"), embedding = formats("embedding_a1111.safetensors");
  const char* loras[] = {lora_path.c_str()};
  const float scales[] = {0.4f};
  const std::string lora_dir = formats("");
  const char* embeddings[] = {embedding.c_str()};
  const char* tokens[] = {"<kk-two>"};
  kakusan_load_params lp = kakusan_default_load_params();
  EXPECT_EQ(lp.config, nullptr);
  EXPECT_EQ(lp.n_loras, 0);
  EXPECT_EQ(lp.n_embeddings, 0);
  lp.config = kit.c_str();
  lp.lora_files = loras;
  lp.lora_scales = scales;
  lp.n_loras = 1;
  lp.lora_dir = lora_dir.c_str();
  lp.embedding_files = embeddings;
  lp.embedding_tokens = tokens;
  lp.n_embeddings = 1;
  kakusan_context* ctx = kakusan_load(file.c_str(), &lp);
  ASSERT_NE(ctx, nullptr) << kakusan_last_error();

  const std::string prompt = "a <kk-two> warrior <lora:lora_kohya:0.7>";
  const char* prompts[] = {prompt.c_str()};
  const uint64_t seeds[] = {5};
  kakusan_params p = testing::one_image_params(prompts, seeds, 4);
  kakusan_images* out = nullptr;
  ASSERT_EQ(kakusan_generate(ctx, &p, &out), KAKUSAN_OK) << kakusan_last_error();
  int width = 0, height = 0;
  const uint8_t* rgb = kakusan_images_rgb(out, 0, &width, &height);
  ASSERT_NE(rgb, nullptr);

  const std::string png = (dir / "cli.png").string();
  testing::ChildProcess cli(KAKUSAN_CLI_PATH,
                            {"generate", "--model", file, "--config", kit, "--lora", lora_path + ":0.4", "--lora-dir",
                             lora_dir, "--embedding", embedding + ":<kk-two>", "--prompt", prompt, "--seed", "5",
                             "--steps", "4", "--quiet", "--output", png},
                            dir.path());
  ASSERT_EQ(cli.wait(std::chrono::minutes(2), std::chrono::milliseconds(10)).status, 0) << cli.stderr_text();
  const Image want = read_png(png).image;
  ASSERT_EQ(size_t(width) * size_t(height) * 3, want.rgb.size());
  EXPECT_EQ(std::memcmp(rgb, want.rgb.data(), want.rgb.size()), 0) << "the C API's image differs from the CLI's";
  kakusan_images_free(out);

  // A tag naming no file: a status and a one-line message; the context still works.
  const char* unknown[] = {"a <lora:nope>"};
  p.prompts = unknown;
  out = nullptr;
  EXPECT_EQ(kakusan_generate(ctx, &p, &out), KAKUSAN_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(std::strstr(kakusan_last_error(), "<lora:nope>"), nullptr) << kakusan_last_error();
  EXPECT_EQ(out, nullptr);
  kakusan_free(ctx);
}

TEST(CApiFormats, BadFieldsAreAStatusAndAMessage) {
  const float nan_scale[] = {std::nanf("")};
  const char* files[] = {"x.safetensors"};
  kakusan_load_params lp = kakusan_default_load_params();
  lp.n_loras = 1;  // but no array
  EXPECT_EQ(kakusan_load("/nonexistent", &lp), nullptr);
  EXPECT_NE(std::strstr(kakusan_last_error(), "lora_files"), nullptr) << kakusan_last_error();
  lp.lora_files = files;
  lp.lora_scales = nan_scale;
  EXPECT_EQ(kakusan_load("/nonexistent", &lp), nullptr);
  EXPECT_NE(std::strstr(kakusan_last_error(), "lora_scales[0]"), nullptr) << kakusan_last_error();
  lp = kakusan_default_load_params();
  lp.n_embeddings = -1;
  EXPECT_EQ(kakusan_load("/nonexistent", &lp), nullptr);
  EXPECT_NE(std::strstr(kakusan_last_error(), "embedding_files"), nullptr) << kakusan_last_error();
}

TEST(CApiFormats, ALoraFolderThatIsAFileIsRefused) {
  KK_REQUIRE_GOLDEN();
  const std::string kit = (*testing::golden_dir() / "tiny-sd").string(), file = formats("lora_kohya.safetensors");
  kakusan_load_params lp = kakusan_default_load_params();
  lp.lora_dir = file.c_str();
  EXPECT_EQ(kakusan_load(kit.c_str(), &lp), nullptr);
  EXPECT_NE(std::strstr(kakusan_last_error(), "is not a folder"), nullptr) << kakusan_last_error();
}

}  // namespace
}  // namespace kakusan
