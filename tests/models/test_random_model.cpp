// Random-weights models: the same walk as loading, so what is written loads back and has diffusers' layout.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "io/safetensors.h"
#include "core/arena.h"
#include "models/autoencoder.h"
#include "models/clip_text_model.h"
#include "models/random_model.h"
#include "models/unet_2d_condition.h"
#include "support/golden.h"

namespace kakusan {
namespace {

int64_t count_unet(const RandomModelSpec& spec) {
  UNet2DConditionModel unet(UNet2DConditionConfig::parse(JsonConfig(spec.unet, "unet")));
  ParameterCounter c;
  unet.visit(c);
  return c.tensors;
}

int64_t count_text_encoder(const RandomModelSpec& spec) {
  ClipTextModel model(ClipTextConfig::parse(JsonConfig(spec.text_encoder, "text_encoder")));
  ParameterCounter c;
  model.visit(c);
  return c.tensors;
}

int64_t count_vae(const RandomModelSpec& spec) {
  AutoencoderKL vae(AutoencoderKLConfig::parse(JsonConfig(spec.vae, "vae")));
  ParameterCounter c;
  vae.visit(c);
  return c.tensors;
}

// The tensor counts of runwayml/stable-diffusion-v1-5 and stabilityai/stable-diffusion-2-1 (counted without
// writing gigabytes).
TEST(RandomModel, BuiltinConfigsHaveTheHubTensorCounts) {
  const RandomModelSpec sd15 = RandomModelSpec::builtin("sd15");
  EXPECT_EQ(count_unet(sd15), 686);
  EXPECT_EQ(count_vae(sd15), 248);
  EXPECT_EQ(count_text_encoder(sd15), 196);
  const RandomModelSpec sd21 = RandomModelSpec::builtin("sd21");
  EXPECT_EQ(count_unet(sd21), 686);
  EXPECT_EQ(count_vae(sd21), 248);
  EXPECT_EQ(count_text_encoder(sd21), 2 + 23 * 16 + 2);  // OpenCLIP-H as diffusers ships it: 23 layers
  UNet2DConditionModel unet(UNet2DConditionConfig::parse(JsonConfig(sd15.unet, "unet")));
  ParameterCounter c;
  unet.visit(c);
  EXPECT_EQ(c.elements, 859520964);  // SD1.5 UNet parameter count
  EXPECT_THROW(RandomModelSpec::builtin("sd3"), Error);
}

TEST(RandomModel, InitFollowsPyTorchDefaults) {
  RandomParameters params(0);
  const Tensor w = params.make("a.to_q.weight", {64, 16}, DType::F32);
  const Tensor b = params.make("a.to_q.bias", {64}, DType::F32);
  const Tensor gamma = params.make("a.norm.weight", {64}, DType::F32);
  const Tensor beta = params.make("a.norm.bias", {64}, DType::F32);
  float lo = 0, hi = 0;
  for (int64_t i = 0; i < w.numel(); ++i) lo = std::min(lo, w.f32()[i]), hi = std::max(hi, w.f32()[i]);
  EXPECT_LE(hi, 0.25f);
  EXPECT_GE(lo, -0.25f);
  EXPECT_GT(hi - lo, 0.4f);  // spread over the whole range
  bool bias_nonzero = false;
  for (int64_t i = 0; i < 64; ++i) {
    bias_nonzero |= b.f32()[i] != 0.0f;
    EXPECT_LE(std::abs(b.f32()[i]), 0.25f);
    EXPECT_EQ(gamma.f32()[i], 1.0f);
    EXPECT_EQ(beta.f32()[i], 0.0f);
  }
  EXPECT_TRUE(bias_nonzero);
}

TEST(RandomModel, TinyFolderLoadsBackAndMatchesTheGoldenLayout) {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / "kakusan_test_random_tiny";
  std::filesystem::remove_all(dir);
  const RandomModelSummary s = make_random_model(RandomModelSpec::builtin("tiny"), dir, DType::F16, 7);
  EXPECT_EQ(s.unet_tensors, 684);
  EXPECT_EQ(s.vae_tensors, 244);
  EXPECT_EQ(s.text_encoder_tensors, 2 + 2 * 16 + 2);
  for (const char* f : {"model_index.json", "unet/config.json", "vae/config.json", "text_encoder/config.json",
                        "text_encoder/model.safetensors", "scheduler/scheduler_config.json"})
    EXPECT_TRUE(std::filesystem::exists(dir / f)) << f;

  const SafetensorsFile unet_file = SafetensorsFile::open(dir / "unet/diffusion_pytorch_model.safetensors");
  for (const auto& e : unet_file.entries()) EXPECT_EQ(e.dtype, DType::F16) << e.name;
  if (const auto golden = testing::golden_dir()) {
    // Same names and shapes as the files diffusers / transformers wrote for the same configs.
    for (const char* file : {"unet/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.safetensors",
                             "text_encoder/model.safetensors"}) {
      SCOPED_TRACE(file);
      const SafetensorsFile mine = SafetensorsFile::open(dir / file);
      const SafetensorsFile ref = SafetensorsFile::open(*golden / "tiny-sd" / file);
      EXPECT_EQ(mine.metadata(), ref.metadata());
      ASSERT_EQ(mine.entries().size(), ref.entries().size());
      for (const auto& e : ref.entries()) {
        const auto* entry = mine.find(e.name);
        ASSERT_NE(entry, nullptr) << e.name;
        EXPECT_EQ(entry->shape, e.shape) << e.name;
      }
    }
  }
  // Loads through the normal path and runs.
  const UNet2DConditionModel unet = UNet2DConditionModel::load(dir / "unet", DType::F16);
  const AutoencoderKL vae = AutoencoderKL::load(dir / "vae");
  const ClipTextModel text_encoder = ClipTextModel::load(dir / "text_encoder", DType::F16);
  Arena arena;
  Context ctx{cpu_backend(), arena, {}};
  Generator g(0);
  const Tensor latents = g.randn({1, 4, 8, 8});
  const Tensor context = g.randn({1, 77, 32});
  const Tensor t = Tensor::full({1}, 500.0f);
  const Tensor eps = unet.forward(ctx, latents, t, context);
  double sum_sq = 0;
  for (int64_t i = 0; i < eps.numel(); ++i) sum_sq += double(eps.f32()[i]) * eps.f32()[i];
  EXPECT_TRUE(std::isfinite(sum_sq));
  EXPECT_GT(sum_sq, 0.0);
  Tensor ids = Tensor::zeros({1, 77}, DType::I64);
  ids.i64()[0] = 49406;
  ids.i64()[1] = 49407;
  EXPECT_EQ(text_encoder.forward(ctx, ids).shape(), Shape({1, 77, 32}));
  const Tensor image = vae.decode(ctx, latents);
  EXPECT_EQ(image.shape(), Shape({1, 3, 64, 64}));
  std::filesystem::remove_all(dir);
}

TEST(RandomModel, SpecFromFileReplacesTheGivenParts) {
  const std::filesystem::path file = std::filesystem::temp_directory_path() / "kakusan_test_random_spec.json";
  {
    std::ofstream out(file);
    out << R"({"unet": {"block_out_channels": [32, 64], "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
               "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"], "norm_num_groups": 8,
               "cross_attention_dim": 16}})";
  }
  const RandomModelSpec spec = RandomModelSpec::from_path(file);
  EXPECT_EQ(spec.unet["cross_attention_dim"], 16);
  EXPECT_EQ(spec.vae["block_out_channels"][0], 128);  // from sd15
  std::filesystem::remove(file);
  EXPECT_THROW(RandomModelSpec::from_path(std::filesystem::temp_directory_path() / "kakusan_no_such_file.json"),
               Error);
}

}  // namespace
}  // namespace kakusan

namespace kakusan {
namespace {

// `make-random-model --config taesd`: madebyollin/taesd's layout (diffusers' AutoencoderTiny() has 134
// tensors, 2,445,063 parameters), written as a VAE folder that load_autoencoder reads back.
TEST(RandomModel, TaesdFolderHasDiffusersLayoutAndLoads) {
  AutoencoderTiny taesd(AutoencoderTinyConfig::parse(JsonConfig(taesd_config(), "taesd")));
  ParameterCounter c;
  taesd.visit(c);
  EXPECT_EQ(c.tensors, 134);
  EXPECT_EQ(c.elements, 2445063);
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / "kakusan_test_random_taesd";
  std::filesystem::remove_all(dir);
  EXPECT_EQ(make_random_autoencoder_tiny(taesd_config(), dir, DType::F16, 3), 134);
  const LoadedAutoencoder vae = load_autoencoder(dir, std::nullopt);
  EXPECT_STREQ(vae.model->class_name(), "AutoencoderTiny");
  Arena arena;
  Context ctx{cpu_backend(), arena, {}};
  const Tensor image = vae.model->decode(ctx, Tensor::full({1, 4, 4, 4}, 0.5f), {});
  ASSERT_EQ(image.shape(), Shape({1, 3, 32, 32}));
  for (int64_t i = 0; i < image.numel(); ++i) ASSERT_TRUE(std::isfinite(image.f32()[i])) << i;
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace kakusan
