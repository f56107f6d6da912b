// The pipeline loads its components through the one model-folder loader (models/model_folder_load.h), so the
// loader's guards hold for it too: a config whose sizes are each in range but imply an absurd parameter
// count is refused before any weight binds.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "core/error.h"
#include "kakusan/pipeline.h"
#include "support/golden.h"

namespace kakusan {
namespace {

namespace fs = std::filesystem;

TEST(PipelineLoading, UsesTheModelFolderLoadersParameterGuard) {
  KK_REQUIRE_GOLDEN();
  const fs::path tiny = *testing::golden_dir() / "tiny-sd";
  const fs::path dir = fs::temp_directory_path() / ("kakusan_wide_" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir / "text_encoder");
  for (const char* name : {"scheduler", "tokenizer", "unet", "vae"}) fs::create_directory_symlink(tiny / name, dir / name);
  fs::copy_file(tiny / "model_index.json", dir / "model_index.json");
  for (const fs::directory_entry& entry : fs::directory_iterator(tiny / "text_encoder"))
    if (entry.path().filename() != "config.json")
      fs::create_symlink(entry.path(), dir / "text_encoder" / entry.path().filename());
  std::ofstream(dir / "text_encoder" / "config.json") << R"({"hidden_size": 65536, "intermediate_size": 262144,
      "num_hidden_layers": 256, "num_attention_heads": 1})";
  try {
    StableDiffusionPipeline::load(dir.string());
    ADD_FAILURE() << "loaded";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("CLIPTextModel"), std::string::npos) << message;
    EXPECT_NE(message.find("parameters (at most"), std::string::npos) << message;
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace kakusan
