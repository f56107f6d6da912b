// The memory planner on the tiny model: its dry sizing pass (the VAE encoder's of image-to-image too) against the arenas a real run measures, the
// refusal message, automatic levers, and diffusers' scheduler-config fix-ups (steps_offset, clip_sample).
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "kakusan/pipeline.h"
#include "backend/registry.h"
#include "pipeline/memory_plan.h"
#include "support/golden.h"
#include "support/separate_heap_backend.h"

namespace kakusan {
namespace {

namespace fs = std::filesystem;

fs::path tiny_model() { return *testing::golden_dir() / "tiny-sd"; }

StableDiffusionPipeline& tiny_pipeline() {
  static StableDiffusionPipeline pipe = StableDiffusionPipeline::load(tiny_model().string());
  return pipe;
}

GenerateParams small_params() {
  GenerateParams p;
  p.prompt = {"portrait photo of a old warrior chief", "a red apple"};
  p.num_inference_steps = 2;
  p.seeds = {0};
  return p;
}

// The dry pass runs the same model code as the real run, so its arena peaks are the measured ones: the
// stated factor is 1 (exact), checked for the UNet and the VAE, with and without VAE tiling and slicing.
TEST(MemoryPlan, EstimatedArenasMatchTheMeasuredPeaks) {
  KK_REQUIRE_GOLDEN();
  for (const bool levers : {false, true}) {
    GenerateParams p = small_params();
    p.vae_slicing = levers;
    p.vae_tiling = levers;
    const GenerateResult r = tiny_pipeline().generate(p);
    SCOPED_TRACE(levers ? "vae slicing + tiling" : "no levers");
    EXPECT_GT(r.memory.unet_arena, 0);
    EXPECT_GT(r.memory.vae_arena, 0);
    EXPECT_GT(r.memory.text_encoder_arena, 0);
    EXPECT_EQ(r.memory.estimated_unet_arena, r.memory.unet_arena);
    EXPECT_EQ(r.memory.estimated_vae_arena, r.memory.vae_arena);
    // The whole estimate covers at least the weights and the largest arena.
    EXPECT_GT(r.memory.estimated_peak, r.memory.unet_arena + kMemoryOverheadBytes);
    // Image-to-image adds the encoder: one image for the batch (one generator) or one per generator.
    for (const bool per_image : {false, true}) {
      GenerateParams i2i = p;
      const Image picture{64, 64, std::vector<uint8_t>(64 * 64 * 3, 90)};
      i2i.image = {picture, picture};  // encoded as a batch of 2, or one at a time
      if (per_image) i2i.seeds = {4, 5};
      const GenerateResult ri = tiny_pipeline().generate(i2i);
      EXPECT_GT(ri.memory.vae_encoder_arena, 0);
      EXPECT_EQ(ri.memory.estimated_vae_encoder_arena, ri.memory.vae_encoder_arena);
    }
    EXPECT_EQ(r.memory.estimated_vae_encoder_arena, 0);
  }
}

TEST(MemoryPlan, RefusesWithTheEstimateAndWhatWouldFit) {
  KK_REQUIRE_GOLDEN();
  GenerateParams p = small_params();
  p.memory_policy = GenerateParams::MemoryPolicy::Refuse;
  p.max_memory = 1'000'000;  // 1 MB: not even the runtime allowance fits
  try {
    tiny_pipeline().generate(p);
    FAIL() << "a run over max_memory was not refused";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("not enough memory"), std::string::npos) << message;
    EXPECT_NE(message.find("the limit is 1 MB (max_memory)"), std::string::npos) << message;
    EXPECT_NE(message.find("no size fits"), std::string::npos) << message;
  }
  // Auto cannot make it fit either: still a clean refusal, never a crash.
  p.memory_policy = GenerateParams::MemoryPolicy::Auto;
  EXPECT_THROW(tiny_pipeline().generate(p), Error);
}

// On a device backend the limit is the device's memory (Backend::device_memory_limit: the CUDA backend's
// free plus held bytes), not the machine's, and the refusal names the device.
TEST(MemoryPlan, OnADeviceThePlanIsAgainstTheDevicesMemory) {
  KK_REQUIRE_GOLDEN();
  static auto* device = new testing::SeparateHeapBackend(cpu_backend());  // outlives the pipeline
  device->set_device_memory_limit(1'000'000);
  register_backend("small-device", [](int) -> Backend& { return *device; });
  LoadOptions load;
  load.device = "small-device";
  StableDiffusionPipeline pipe = StableDiffusionPipeline::load(tiny_model().string(), load);
  GenerateParams p = small_params();
  p.memory_policy = GenerateParams::MemoryPolicy::Refuse;
  try {
    pipe.generate(p);
    FAIL() << "a run over the device's memory was not refused";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("the limit is 1 MB (free on separate-heap)"), std::string::npos) << message;
  }
}

// Just below the estimate with full attention, Auto switches to flash attention (the same numbers to float
// rounding), says so, and the run goes through; Refuse says that flash attention would fit.
TEST(MemoryPlan, AutoPullsALeverWhenTheRunWouldNotFit) {
  KK_REQUIRE_GOLDEN();
  GenerateParams p = small_params();
  p.output_type = OutputType::Latent;
  p.attention.mode = AttentionOptions::Mode::Full;
  const GenerateResult unlimited = tiny_pipeline().generate(p);
  ASSERT_GT(unlimited.memory.estimated_peak, 0);

  p.max_memory = unlimited.memory.estimated_peak - 1;
  const GenerateResult adapted = tiny_pipeline().generate(p);
  EXPECT_LE(adapted.memory.estimated_peak, p.max_memory);
  bool warned = false;
  for (const std::string& w : adapted.warnings) warned = warned || w.find("flash attention") != std::string::npos;
  EXPECT_TRUE(warned);
  ASSERT_EQ(adapted.latents.size(), unlimited.latents.size());
  for (size_t i = 0; i < adapted.latents.size(); ++i)
    ASSERT_NEAR(adapted.latents[i], unlimited.latents[i], 1e-4f) << i;

  p.memory_policy = GenerateParams::MemoryPolicy::Refuse;
  try {
    tiny_pipeline().generate(p);
    FAIL() << "Refuse did not refuse";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("it fits with flash attention"), std::string::npos) << e.what();
  }
}

// Low-memory mode's lever: the UNet's pages are dropped after every block and fault back in from the file,
// so the results are bit for bit the same; the estimate counts one block's weights instead of all.
TEST(MemoryPlan, StreamedUNetWeightsChangeOnlyTheMemory) {
  KK_REQUIRE_GOLDEN();
  GenerateParams p = small_params();
  p.output_type = OutputType::Latent;
  const GenerateResult resident = tiny_pipeline().generate(p);
  p.stream_unet_weights = true;
  const GenerateResult streamed = tiny_pipeline().generate(p);
  ASSERT_EQ(streamed.latents.size(), resident.latents.size());
  for (size_t i = 0; i < streamed.latents.size(); ++i) ASSERT_EQ(streamed.latents[i], resident.latents[i]) << i;
  EXPECT_LE(streamed.memory.estimated_peak, resident.memory.estimated_peak);
  EXPECT_EQ(streamed.memory.unet_arena, resident.memory.unet_arena);
}

TEST(MemoryPlan, VaeTileSizeIsChecked) {
  GenerateParams p = small_params();
  for (const int bad : {-8, 8, 100, 9000}) {
    p.vae_tile_size = bad;
    EXPECT_THROW(check_inputs(p), Error) << bad;
  }
  p.vae_tile_size = 256;
  EXPECT_NO_THROW(check_inputs(p));
}

// A model folder whose scheduler config is the tiny model's with outdated values; the other components
// are links to the tiny model's.
class OutdatedScheduler : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!testing::golden_dir()) return;
    dir_ = fs::temp_directory_path() / ("kakusan_sched_" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "scheduler");
    for (const char* name : {"text_encoder", "tokenizer", "unet", "vae"})
      fs::create_directory_symlink(tiny_model() / name, dir_ / name);
    fs::copy_file(tiny_model() / "model_index.json", dir_ / "model_index.json");
    std::ifstream in(tiny_model() / "scheduler" / "scheduler_config.json");
    nlohmann::json config = nlohmann::json::parse(in);
    config["steps_offset"] = 0;
    config["clip_sample"] = true;
    std::ofstream(dir_ / "scheduler" / "scheduler_config.json") << config.dump(2);
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }
  fs::path dir_;
};

TEST_F(OutdatedScheduler, IsFixedUpAsDiffusersDoesWithAWarning) {
  KK_REQUIRE_GOLDEN();
  StableDiffusionPipeline outdated = StableDiffusionPipeline::load(dir_.string());
  GenerateParams p = small_params();
  p.output_type = OutputType::Latent;
  const GenerateResult fixed = outdated.generate(p);
  const GenerateResult reference = tiny_pipeline().generate(p);
  int warnings = 0;
  for (const std::string& w : fixed.warnings)
    warnings += (w.find("steps_offset is 0") != std::string::npos) + (w.find("clip_sample is true") != std::string::npos);
  EXPECT_EQ(warnings, 2);
  ASSERT_EQ(fixed.latents.size(), reference.latents.size());
  for (size_t i = 0; i < fixed.latents.size(); ++i) ASSERT_EQ(fixed.latents[i], reference.latents[i]) << i;
}

}  // namespace
}  // namespace kakusan
