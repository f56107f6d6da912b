// AutoencoderKL against diffusers' own outputs (golden kit C.5), with every attention strategy, slicing and
// tiling, and the legacy attention names of real VAE checkpoints.
#include <gtest/gtest.h>

#include <cmath>

#include <filesystem>

#include "attention_cases.h"
#include "model_tolerances.h"
#include "models/autoencoder_kl.h"
#include "support/golden.h"
#include "support/golden_manifest.h"

namespace kakusan {
namespace {

using testing::golden_dir;
using testing::open_golden;

using testing::kVaeTolerance;

void check_decode(const AutoencoderKL& vae, const SafetensorsFile& golden) {
  for (const testing::AttentionCase& s : testing::kAttentionCases) {
    SCOPED_TRACE(std::string("attention strategy ") + s.name);
    Arena arena;
    Context ctx = testing::attention_context(cpu_backend(), arena, s);
    Activations trace;
    KK_EXPECT_CLOSE(vae.decode(ctx, golden.view("decoder_input"), {}, &trace), golden.view("decoded"), kVaeTolerance,
                    "decoded");
    ASSERT_NE(trace.find("post_quant_conv"), nullptr);
    KK_EXPECT_CLOSE(*trace.find("post_quant_conv"), golden.view("post_quant_conv"), kVaeTolerance, "post_quant_conv");
    EXPECT_EQ(arena.used_bytes(), 0u);
  }
}

void check_encode(const AutoencoderKL& vae, const SafetensorsFile& golden) {
  for (const testing::AttentionCase& s : testing::kAttentionCases) {
    SCOPED_TRACE(std::string("attention strategy ") + s.name);
    Arena arena;
    Context ctx = testing::attention_context(cpu_backend(), arena, s);
    const DiagonalGaussianDistribution dist = vae.encode(ctx, golden.view("image"));
    KK_EXPECT_CLOSE(dist.moments, golden.view("moments"), kVaeTolerance, "moments");
    KK_EXPECT_CLOSE(dist.mean, golden.view("mean"), kVaeTolerance, "mean");
    // The tiny VAE's logvar is inside the clamp range, so the raw channels are diffusers' clamped logvar.
    KK_EXPECT_CLOSE(dist.raw_logvar(), golden.view("logvar"), kVaeTolerance, "logvar");
    Generator generator(0);
    const Tensor sample = dist.sample(ctx.backend, generator);
    KK_EXPECT_CLOSE(sample, golden.view("latent_sample_seed0"), kVaeTolerance, "latent_sample_seed0");
    KK_EXPECT_CLOSE(vae.decode(ctx, dist.mode()), golden.view("roundtrip_decoded_mean"), kVaeTolerance,
                    "roundtrip_decoded_mean");
  }
}

TEST(VaeGolden, TinySdDecodeAndEncode) {
  KK_REQUIRE_GOLDEN();
  const AutoencoderKL vae = AutoencoderKL::load(*golden_dir() / "tiny-sd" / "vae");
  const SafetensorsFile golden = open_golden("components/vae_tiny-sd.safetensors");
  check_decode(vae, golden);
  check_encode(vae, golden);
}

TEST(VaeGolden, TinySdVDecodeAndEncode) {
  KK_REQUIRE_GOLDEN();
  const AutoencoderKL vae = AutoencoderKL::load(*golden_dir() / "tiny-sd-v" / "vae");
  const SafetensorsFile golden = open_golden("components/vae_tiny-sd-v.safetensors");
  check_decode(vae, golden);
  check_encode(vae, golden);
}

TEST(VaeGolden, TinyVaeAltDecode) {
  KK_REQUIRE_GOLDEN();
  const AutoencoderKL vae = AutoencoderKL::load(*golden_dir() / "tiny-vae-alt");
  check_decode(vae, open_golden("components/vae_tiny-vae-alt.safetensors"));
}

TEST(VaeGolden, ReferenceBackendDecode) {
  KK_REQUIRE_GOLDEN();
  const AutoencoderKL vae = AutoencoderKL::load(*golden_dir() / "tiny-sd" / "vae");
  const SafetensorsFile golden = open_golden("components/vae_tiny-sd.safetensors");
  Arena arena;
  Context ctx{reference_backend(), arena, {}};
  KK_EXPECT_CLOSE(vae.decode(ctx, golden.view("decoder_input")), golden.view("decoded"), kVaeTolerance, "decoded");
}

// A batch of two different latents: slicing decodes one at a time and must give the batched result.
TEST(VaeMemory, SlicingMatchesBatchedDecode) {
  KK_REQUIRE_GOLDEN();
  const AutoencoderKL vae = AutoencoderKL::load(*golden_dir() / "tiny-sd" / "vae");
  Generator generator(3);
  const Tensor z = generator.randn({2, 4, 8, 8});
  Arena arena;
  Context ctx{cpu_backend(), arena, {}};
  const Tensor batched = vae.decode(ctx, z);
  const Tensor sliced = vae.decode(ctx, z, VaeMemoryOptions{.slicing = true});
  KK_EXPECT_CLOSE(sliced, batched, testing::Tolerance{1e-5, 1e-5}, "sliced decode");
  const Tensor one = vae.decode(ctx, z.view().slice0(1, 2));
  KK_EXPECT_CLOSE(sliced.view().slice0(1, 2), one, testing::Tolerance{1e-5, 1e-5}, "second image alone");
  const DiagonalGaussianDistribution a = vae.encode(ctx, batched), b = vae.encode(ctx, batched, {.slicing = true});
  KK_EXPECT_CLOSE(b.moments, a.moments, testing::Tolerance{1e-5, 1e-5}, "sliced encode");
}

// A smaller tile than the config's sample_size (low-memory mode): the same stitching with 4-latent tiles,
// so identical to the default when the size is the default, and a smaller activation peak otherwise.
TEST(VaeMemory, TileSizeOption) {
  KK_REQUIRE_GOLDEN();
  const AutoencoderKL vae = AutoencoderKL::load(*golden_dir() / "tiny-sd" / "vae");
  EXPECT_EQ(vae.tile_latent_size({.tiling = true, .tile_size = 32}), 4);
  Generator generator(6);
  const Tensor z = generator.randn({1, 4, 14, 10});
  Arena arena;
  Context ctx{cpu_backend(), arena, {}};
  const Tensor by_default = vae.decode(ctx, z, {.tiling = true});
  const size_t default_peak = arena.peak_bytes();
  const Tensor explicit_default = vae.decode(ctx, z, {.tiling = true, .tile_size = 64});
  KK_EXPECT_CLOSE(explicit_default, by_default, testing::Tolerance{0.0, 0.0});
  Arena small_arena;
  Context small_ctx{cpu_backend(), small_arena, {}};
  const Tensor small = vae.decode(small_ctx, z, {.tiling = true, .tile_size = 32});
  ASSERT_EQ(small.shape(), by_default.shape());
  EXPECT_LT(small_arena.peak_bytes(), default_peak);
  for (int64_t i = 0; i < small.numel(); ++i) ASSERT_TRUE(std::isfinite(small.f32()[i])) << i;
}

// diffusers' tiled_decode, written out independently with plain tensors: decode each tile, blend, crop, join.
TEST(VaeMemory, TilingFollowsDiffusersTiledDecode) {
  KK_REQUIRE_GOLDEN();
  const AutoencoderKL vae = AutoencoderKL::load(*golden_dir() / "tiny-sd" / "vae");
  ASSERT_EQ(vae.tile_latent_size({}), 8);  // sample_size 64, factor 8
  Generator generator(5);
  const Tensor z = generator.randn({1, 4, 14, 10});
  Arena arena;
  Context ctx{cpu_backend(), arena, {}};
  const Tensor tiled = vae.decode(ctx, z, VaeMemoryOptions{.tiling = true});
  ASSERT_EQ(tiled.shape(), Shape({1, 3, 112, 80}));
  EXPECT_EQ(arena.used_bytes(), 0u);

  // overlap 6 latents, blend 16 pixels, keep 48 pixels per tile.
  const int64_t starts_h[] = {0, 6, 12}, starts_w[] = {0, 6};
  Tensor tiles[3][2];
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 2; ++j) {
      const int64_t h = std::min<int64_t>(8, 14 - starts_h[i]), w = std::min<int64_t>(8, 10 - starts_w[j]);
      const Tensor zt = Tensor::copy_of(z.view().narrow(2, starts_h[i], h).narrow(3, starts_w[j], w));
      tiles[i][j] = vae.decode(ctx, zt);
    }
  auto px = [](Tensor& t, int64_t c, int64_t y, int64_t x) -> float& {
    return t.f32()[(c * t.dim(2) + y) * t.dim(3) + x];
  };
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 2; ++j) {
      Tensor& b = tiles[i][j];
      if (i > 0) {
        Tensor& a = tiles[i - 1][j];
        const int64_t e = std::min({a.dim(2), b.dim(2), int64_t(16)});
        for (int64_t c = 0; c < 3; ++c)
          for (int64_t y = 0; y < e; ++y)
            for (int64_t x = 0; x < b.dim(3); ++x)
              px(b, c, y, x) = px(a, c, a.dim(2) - e + y, x) * float(1.0 - double(y) / e) + px(b, c, y, x) * float(double(y) / e);
      }
      if (j > 0) {
        Tensor& a = tiles[i][j - 1];
        const int64_t e = std::min({a.dim(3), b.dim(3), int64_t(16)});
        for (int64_t c = 0; c < 3; ++c)
          for (int64_t y = 0; y < b.dim(2); ++y)
            for (int64_t x = 0; x < e; ++x)
              px(b, c, y, x) = px(a, c, y, a.dim(3) - e + x) * float(1.0 - double(x) / e) + px(b, c, y, x) * float(double(x) / e);
      }
    }
  Tensor expected = Tensor::zeros({1, 3, 112, 80});
  int64_t y0 = 0;
  for (int i = 0; i < 3; ++i) {
    int64_t x0 = 0, rows = 0;
    for (int j = 0; j < 2; ++j) {
      Tensor& t = tiles[i][j];
      rows = std::min<int64_t>(48, t.dim(2));
      const int64_t cols = std::min<int64_t>(48, t.dim(3));
      for (int64_t c = 0; c < 3; ++c)
        for (int64_t y = 0; y < rows; ++y)
          for (int64_t x = 0; x < cols; ++x) px(expected, c, y0 + y, x0 + x) = px(t, c, y, x);
      x0 += cols;
    }
    y0 += rows;
  }
  KK_EXPECT_CLOSE(tiled, expected, testing::Tolerance{1e-6, 1e-6}, "tiled decode");
  // Latents no larger than a tile decode normally.
  const Tensor small = generator.randn({1, 4, 8, 8});
  KK_EXPECT_CLOSE(vae.decode(ctx, small, {.tiling = true}), vae.decode(ctx, small), testing::Tolerance{0, 0},
                  "untiled small decode");
}

// Tiled encoding: the first tile is never blended, so its kept region equals encoding that tile alone; a
// small image is encoded without tiles.
TEST(VaeMemory, TiledEncode) {
  KK_REQUIRE_GOLDEN();
  const AutoencoderKL vae = AutoencoderKL::load(*golden_dir() / "tiny-sd" / "vae");
  Generator generator(9);
  const Tensor image = generator.randn({1, 3, 112, 80});
  Arena arena;
  Context ctx{cpu_backend(), arena, {}};
  const DiagonalGaussianDistribution tiled = vae.encode(ctx, image, {.tiling = true});
  ASSERT_EQ(tiled.moments.shape(), Shape({1, 8, 14, 10}));
  const DiagonalGaussianDistribution first =
      vae.encode(ctx, Tensor::copy_of(image.view().narrow(2, 0, 64).narrow(3, 0, 64)));
  KK_EXPECT_CLOSE(tiled.moments.view().narrow(2, 0, 6).narrow(3, 0, 6), first.moments.view().narrow(2, 0, 6).narrow(3, 0, 6),
                  testing::Tolerance{1e-6, 1e-6}, "first tile");
  const DiagonalGaussianDistribution whole = vae.encode(ctx, image);
  EXPECT_FALSE(testing::tensors_close(tiled.moments, whole.moments, testing::Tolerance{1e-4, 1e-4}))
      << "tiling should change the far tiles";
  const Tensor small = generator.randn({1, 3, 64, 64});
  KK_EXPECT_CLOSE(vae.encode(ctx, small, {.tiling = true}).moments, vae.encode(ctx, small).moments,
                  testing::Tolerance{0, 0}, "untiled small encode");
  EXPECT_EQ(arena.used_bytes(), 0u);
}

// runwayml/stable-diffusion-v1-5's VAE still names its mid-block attention query/key/value/proj_attn.
TEST(VaeLoad, AcceptsLegacyAttentionNames) {
  KK_REQUIRE_GOLDEN();
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / "kakusan_test_vae_legacy";
  std::filesystem::create_directories(dir);
  std::filesystem::copy_file(*golden_dir() / "tiny-sd/vae/config.json", dir / "config.json",
                             std::filesystem::copy_options::overwrite_existing);
  const SafetensorsFile good = SafetensorsFile::open(*golden_dir() / "tiny-sd/vae/diffusion_pytorch_model.safetensors");
  std::vector<std::pair<std::string, TensorView>> tensors;
  int renamed = 0;
  for (const auto& e : good.entries()) {
    std::string name = e.name;
    for (const auto& [modern, legacy] : std::vector<std::pair<std::string, std::string>>{
             {".to_q.", ".query."}, {".to_k.", ".key."}, {".to_v.", ".value."}, {".to_out.0.", ".proj_attn."}}) {
      const size_t at = name.find(modern);
      if (at != std::string::npos) {
        name.replace(at, modern.size(), legacy);
        ++renamed;
      }
    }
    tensors.emplace_back(name, good.view(e.name));
  }
  ASSERT_EQ(renamed, 16);  // encoder + decoder, 4 linears x (weight, bias)
  write_safetensors(dir / "diffusion_pytorch_model.safetensors", tensors);
  const AutoencoderKL vae = AutoencoderKL::load(dir);
  const SafetensorsFile golden = open_golden("components/vae_tiny-sd.safetensors");
  Arena arena;
  Context ctx{cpu_backend(), arena, {}};
  KK_EXPECT_CLOSE(vae.decode(ctx, golden.view("decoder_input")), golden.view("decoded"), kVaeTolerance, "decoded");
  std::filesystem::remove_all(dir);
}

TEST(VaeStructure, TensorCountsMatchTheFiles) {
  KK_REQUIRE_GOLDEN();
  for (const char* model : {"tiny-sd/vae", "tiny-sd-v/vae"}) {
    AutoencoderKL vae(AutoencoderKLConfig::parse(JsonConfig::load(*golden_dir() / model / "config.json")));
    ParameterCounter counter;
    vae.visit(counter);
    const SafetensorsFile file = SafetensorsFile::open(*golden_dir() / model / "diffusion_pytorch_model.safetensors");
    EXPECT_EQ(counter.tensors, int64_t(file.entries().size())) << model;
  }
}

TEST(VaeConfig, UnsupportedBlockTypeNamesTheKey) {
  nlohmann::json j = {{"down_block_types", {"DownBlock2D"}}, {"up_block_types", {"UpDecoderBlock2D"}}};
  try {
    AutoencoderKLConfig::parse(JsonConfig(j, "vae/config.json"));
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("down_block_types"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace kakusan
