// UNet2DConditionModel against diffusers' own outputs (golden kit C.4), with every attention strategy, plus
// config and weight-loading errors.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "attention_cases.h"
#include "model_tolerances.h"
#include "core/generator.h"
#include "models/unet_2d_condition.h"
#include "support/golden.h"
#include "support/golden_manifest.h"

namespace kakusan {
namespace {

using testing::golden_dir;
using testing::open_golden;

using testing::kUNetTolerance;

Tensor scalar_timesteps(std::initializer_list<float> values) {
  Tensor t = Tensor::empty({int64_t(values.size())});
  int i = 0;
  for (float v : values) t.f32()[i++] = v;
  return t;
}

std::string golden_name(std::string name) {
  for (char& c : name)
    if (c == '.') c = '_';
  return "act_t981_" + name;
}

void check_unet_golden(const std::string& model_name, Backend& backend) {
  const UNet2DConditionModel unet = UNet2DConditionModel::load(*golden_dir() / model_name / "unet");
  const SafetensorsFile golden = open_golden("components/unet_" + model_name + ".safetensors");
  const TensorView sample = golden.view("sample");
  const TensorView context = golden.view("encoder_hidden_states");
  for (const testing::AttentionCase& s : testing::kAttentionCases) {
    SCOPED_TRACE(std::string("attention strategy ") + s.name);
    Arena arena;
    Context ctx = testing::attention_context(backend, arena, s);

    Activations trace;
    const Tensor t981 = scalar_timesteps({981.0f});
    KK_EXPECT_CLOSE(unet.forward(ctx, sample, t981, context, &trace), golden.view("noise_pred_t981"),
                    kUNetTolerance, "noise_pred_t981");
    const char* names[] = {"time_proj",     "time_embedding", "conv_in",     "down_blocks.0", "down_blocks.1",
                           "down_blocks.2", "down_blocks.3",  "mid_block",   "up_blocks.0",   "up_blocks.1",
                           "up_blocks.2",   "up_blocks.3",    "conv_norm_out", "conv_out"};
    for (const char* name : names) {
      const Tensor* got = trace.find(name);
      ASSERT_NE(got, nullptr) << name << " was not recorded";
      KK_EXPECT_CLOSE(*got, golden.view(golden_name(name)), kUNetTolerance, name);
    }
    EXPECT_EQ(arena.used_bytes(), 0u) << "forward must release its activations";

    KK_EXPECT_CLOSE(unet.forward(ctx, sample, scalar_timesteps({1.0f}), context), golden.view("noise_pred_t1"),
                    kUNetTolerance, "noise_pred_t1");
    KK_EXPECT_CLOSE(unet.forward(ctx, sample, scalar_timesteps({945.712890625f}), context),
                    golden.view("noise_pred_t945_712890625"), kUNetTolerance, "noise_pred_t945_712890625");
    KK_EXPECT_CLOSE(unet.forward(ctx, sample, scalar_timesteps({981.0f, 1.0f}), context),
                    golden.view("noise_pred_t_981_1"), kUNetTolerance, "noise_pred_t_981_1");
  }
}

TEST(UNetGolden, TinySd) {
  KK_REQUIRE_GOLDEN();
  check_unet_golden("tiny-sd", cpu_backend());
}

TEST(UNetGolden, TinySdV) {
  KK_REQUIRE_GOLDEN();
  check_unet_golden("tiny-sd-v", cpu_backend());
}

TEST(UNetGolden, TinySdReferenceBackend) {
  KK_REQUIRE_GOLDEN();
  const UNet2DConditionModel unet = UNet2DConditionModel::load(*golden_dir() / "tiny-sd" / "unet");
  const SafetensorsFile golden = open_golden("components/unet_tiny-sd.safetensors");
  Arena arena;
  Context ctx{reference_backend(), arena, {}};
  KK_EXPECT_CLOSE(unet.forward(ctx, golden.view("sample"), scalar_timesteps({981.0f}),
                               golden.view("encoder_hidden_states")),
                  golden.view("noise_pred_t981"), kUNetTolerance, "noise_pred_t981");
}

TEST(UNetGolden, HalfPrecisionWeightsStayCloseToFloat) {
  KK_REQUIRE_GOLDEN();
  const UNet2DConditionModel unet = UNet2DConditionModel::load(*golden_dir() / "tiny-sd" / "unet", DType::F16);
  const SafetensorsFile golden = open_golden("components/unet_tiny-sd.safetensors");
  Arena arena;
  Context ctx{cpu_backend(), arena, {}};
  // Rounding the weights to fp16 moves the output by ~7e-4 here (bf16: ~5e-3): beyond the fp32 tolerance,
  // yet close to diffusers' fp32 output, which shows the weights are used in their file dtype.
  KK_EXPECT_CLOSE(unet.forward(ctx, golden.view("sample"), scalar_timesteps({981.0f}),
                               golden.view("encoder_hidden_states")),
                  golden.view("noise_pred_t981"), testing::Tolerance{3e-3, 0}, "noise_pred_t981 (fp16 weights)");
}

TEST(UNetGolden, BFloat16WeightsStayCloseToFloat) {
  KK_REQUIRE_GOLDEN();
  const UNet2DConditionModel unet = UNet2DConditionModel::load(*golden_dir() / "tiny-sd" / "unet", DType::BF16);
  const SafetensorsFile golden = open_golden("components/unet_tiny-sd.safetensors");
  Arena arena;
  Context ctx{cpu_backend(), arena, {}};
  KK_EXPECT_CLOSE(unet.forward(ctx, golden.view("sample"), scalar_timesteps({981.0f}),
                               golden.view("encoder_hidden_states")),
                  golden.view("noise_pred_t981"), testing::Tolerance{2e-2, 0}, "noise_pred_t981 (bf16 weights)");
}

TEST(UNetGolden, UnsupportedComputeDtypeIsAClearError) {
  KK_REQUIRE_GOLDEN();
  const UNet2DConditionModel unet = UNet2DConditionModel::load(*golden_dir() / "tiny-sd" / "unet");
  const SafetensorsFile golden = open_golden("components/unet_tiny-sd.safetensors");
  Arena arena;
  Context ctx{cpu_backend(), arena, {}};
  ctx.compute_dtype = DType::BF16;  // not implemented yet by any backend
  try {
    unet.forward(ctx, golden.view("sample"), scalar_timesteps({981.0f}), golden.view("encoder_hidden_states"));
    FAIL() << "bf16 compute was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cpu backend cannot compute in BF16"), std::string::npos) << e.what();
  }
}

// After one pass sizes the arena, later passes (every denoising step) allocate no new activation memory.
TEST(UNetMemory, SecondPassReusesTheArena) {
  KK_REQUIRE_GOLDEN();
  const UNet2DConditionModel unet = UNet2DConditionModel::load(*golden_dir() / "tiny-sd" / "unet");
  const SafetensorsFile golden = open_golden("components/unet_tiny-sd.safetensors");
  Arena arena;
  Context ctx{cpu_backend(), arena, {}};
  Tensor out = Tensor::empty({2, 4, 8, 8});
  const Tensor t = scalar_timesteps({981.0f});
  unet.forward(ctx, golden.view("sample"), t, golden.view("encoder_hidden_states"), out.view());
  const size_t peak = arena.peak_bytes();
  EXPECT_GT(peak, 0u);
  arena.reset();
  const size_t capacity = arena.capacity_bytes();
  EXPECT_GE(capacity, peak);
  for (int i = 0; i < 2; ++i) {
    unet.forward(ctx, golden.view("sample"), t, golden.view("encoder_hidden_states"), out.view());
    EXPECT_EQ(arena.capacity_bytes(), capacity);
    EXPECT_EQ(arena.peak_bytes(), peak);
  }
  KK_EXPECT_CLOSE(out, golden.view("noise_pred_t981"), kUNetTolerance, "noise_pred_t981");
}

// Latents whose size is not a multiple of 2^downsamplings (e.g. a 600x440 image: 75x55 latents) run, with the
// upsamplers targeting the skip sizes; a multiple-of-8 crop of the same model still matches its golden above.
TEST(UNetUpsample, LatentSizesThatAreNotMultiplesOfEight) {
  KK_REQUIRE_GOLDEN();
  const UNet2DConditionModel unet = UNet2DConditionModel::load(*golden_dir() / "tiny-sd" / "unet");
  const SafetensorsFile golden = open_golden("components/unet_tiny-sd.safetensors");
  Generator g(0);
  const Tensor sample = g.randn({2, 4, 11, 5});
  Arena arena;
  Context ctx{cpu_backend(), arena, {}};
  Activations trace;
  const Tensor out = unet.forward(ctx, sample, scalar_timesteps({981.0f}), golden.view("encoder_hidden_states"), &trace);
  EXPECT_EQ(out.shape(), Shape({2, 4, 11, 5}));
  EXPECT_EQ(trace.find("down_blocks.0")->shape(), Shape({2, 32, 6, 3}));
  EXPECT_EQ(trace.find("down_blocks.2")->shape(), Shape({2, 64, 2, 1}));
  EXPECT_EQ(trace.find("up_blocks.0")->shape(), Shape({2, 64, 3, 2}));
  EXPECT_EQ(trace.find("up_blocks.2")->shape(), Shape({2, 64, 11, 5}));
  Arena ref_arena;
  Context ref{reference_backend(), ref_arena, {}};
  KK_EXPECT_CLOSE(out, unet.forward(ref, sample, scalar_timesteps({981.0f}), golden.view("encoder_hidden_states")),
                  kUNetTolerance, "cpu vs reference backend");
}

// ResnetBlock2D adds the time embedding two ways (folded into per-sample conv biases from 32x32 pixels on, a
// batched conv plus a broadcast add below); a batch of two at 32x32 mixes both, one sample alone uses only the
// first. Both must give each sample's own result, with per-sample timesteps and contexts.
TEST(UNetBatch, EachSampleOfABatchEqualsItAlone) {
  KK_REQUIRE_GOLDEN();
  const UNet2DConditionModel unet = UNet2DConditionModel::load(*golden_dir() / "tiny-sd" / "unet");
  const SafetensorsFile golden = open_golden("components/unet_tiny-sd.safetensors");
  Generator g(1);
  const Tensor sample = g.randn({2, 4, 32, 32});
  const TensorView context = golden.view("encoder_hidden_states");
  const Tensor t = scalar_timesteps({981.0f, 1.0f});
  Arena arena;
  Context ctx{cpu_backend(), arena, {}};
  const Tensor both = unet.forward(ctx, sample, t, context);
  for (int64_t b = 0; b < 2; ++b) {
    const Tensor alone = unet.forward(ctx, sample.view().slice0(b, b + 1), t.view().slice0(b, b + 1),
                                      context.slice0(b, b + 1));
    KK_EXPECT_CLOSE(both.view().slice0(b, b + 1), alone, testing::Tolerance{1e-5, 1e-5}, str_cat("sample ", b));
  }
}

TEST(UNetStructure, TinySdHasEveryTensorOfItsFile) {
  KK_REQUIRE_GOLDEN();
  UNet2DConditionModel unet(UNet2DConditionConfig::parse(JsonConfig::load(*golden_dir() / "tiny-sd/unet/config.json")));
  ParameterCounter counter;
  unet.visit(counter);
  EXPECT_EQ(counter.tensors, 684);
}

JsonConfig tiny_config_with(const std::string& key, const nlohmann::json& value) {
  nlohmann::json j = {{"block_out_channels", {32, 64}},
                      {"down_block_types", {"CrossAttnDownBlock2D", "DownBlock2D"}},
                      {"up_block_types", {"UpBlock2D", "CrossAttnUpBlock2D"}},
                      {"norm_num_groups", 16},
                      {"cross_attention_dim", 32}};
  j[key] = value;
  return JsonConfig(j, "unet/config.json");
}

std::string parse_error(const JsonConfig& json) {
  try {
    UNet2DConditionConfig::parse(json);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(UNetConfig, UnsupportedOptionsNameTheKey) {
  EXPECT_NE(parse_error(tiny_config_with("class_embed_type", "timestep")).find("class_embed_type"),
            std::string::npos);
  EXPECT_NE(parse_error(tiny_config_with("down_block_types", {"SimpleCrossAttnDownBlock2D", "DownBlock2D"}))
                .find("SimpleCrossAttnDownBlock2D"),
            std::string::npos);
  EXPECT_NE(parse_error(tiny_config_with("mid_block_type", "UNetMidBlock2DSimpleCrossAttn")).find("mid_block_type"),
            std::string::npos);
  EXPECT_NE(parse_error(tiny_config_with("num_attention_heads", 8)).find("num_attention_heads"), std::string::npos);
  EXPECT_NE(parse_error(tiny_config_with("attention_head_dim", {8, 8, 8})).find("attention_head_dim"),
            std::string::npos);
  EXPECT_NE(parse_error(tiny_config_with("attention_head_dim", 5)).find("attention_head_dim"), std::string::npos);
  EXPECT_NE(parse_error(tiny_config_with("resnet_time_scale_shift", "scale_shift")).find("resnet_time_scale_shift"),
            std::string::npos);
  EXPECT_EQ(parse_error(tiny_config_with("attention_head_dim", {4, 8})), "");
}

TEST(UNetConfig, DefaultsAreDiffusers) {
  const UNet2DConditionConfig c = UNet2DConditionConfig::parse(JsonConfig(nlohmann::json::object(), "config.json"));
  EXPECT_EQ(c.block_out_channels, (std::vector<int>{320, 640, 1280, 1280}));
  EXPECT_EQ(c.attention_head_dim, (std::vector<int>{8, 8, 8, 8}));
  EXPECT_EQ(c.cross_attention_dim, 1280);
  EXPECT_EQ(c.norm_num_groups, 32);
  EXPECT_EQ(c.time_embed_dim(), 1280);
  EXPECT_FALSE(c.use_linear_projection);
}

TEST(UNetLoad, ReportsMissingAndMisshapedTensorsTogether) {
  KK_REQUIRE_GOLDEN();
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / "kakusan_test_unet_bad";
  std::filesystem::create_directories(dir);
  std::filesystem::copy_file(*golden_dir() / "tiny-sd/unet/config.json", dir / "config.json",
                             std::filesystem::copy_options::overwrite_existing);
  const SafetensorsFile good = SafetensorsFile::open(*golden_dir() / "tiny-sd/unet/diffusion_pytorch_model.safetensors");
  std::vector<std::pair<std::string, TensorView>> tensors;
  Tensor wrong = Tensor::zeros({3});
  for (const auto& e : good.entries()) {
    if (e.name == "conv_in.bias") continue;                                  // missing
    if (e.name == "conv_out.bias") tensors.emplace_back(e.name, wrong.view());  // wrong shape
    else tensors.emplace_back(e.name, good.view(e.name));
  }
  tensors.emplace_back("extra.weight", wrong.view());  // unexpected
  write_safetensors(dir / "diffusion_pytorch_model.safetensors", tensors);
  try {
    UNet2DConditionModel::load(dir);
    FAIL() << "loading must fail";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("conv_in.bias"), std::string::npos) << message;
    EXPECT_NE(message.find("conv_out.bias"), std::string::npos) << message;
    EXPECT_NE(message.find("extra.weight"), std::string::npos) << message;
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace kakusan
