// AutoencoderTiny (TAESD) against diffusers 0.29.2's own outputs (tests/golden/taesd, written by
// tests/golden/lcm/make_goldens.py with a tiny random TAESD committed beside them): decode and encode on the
// CPU and reference backends, slicing, loading by class name, and config errors.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/arena.h"
#include "io/safetensors.h"
#include "models/autoencoder.h"
#include "nn/upload_weights.h"
#include "support/golden.h"
#include "support/separate_heap_backend.h"

namespace kakusan {
namespace {

constexpr testing::Tolerance kVaeTolerance{1e-4, 1e-4};  // the kit's VAE tolerance (manifest: vae_*)

const std::filesystem::path kDir = std::filesystem::path(KAKUSAN_SOURCE_DIR) / "tests/golden/taesd";

SafetensorsFile goldens() { return SafetensorsFile::open(kDir / "taesd.safetensors"); }

TEST(AutoencoderTiny, DecodeAndEncodeMatchDiffusers) {
  const AutoencoderTiny taesd = AutoencoderTiny::load(kDir / "tiny-taesd");
  const SafetensorsFile golden = goldens();
  for (Backend* be : {&cpu_backend(), &reference_backend()}) {
    SCOPED_TRACE(be->name());
    Arena arena;
    Context ctx{*be, arena, {}};
    KK_EXPECT_CLOSE(taesd.decode(ctx, golden.view("decode_input")), golden.view("decode_output"), kVaeTolerance,
                    "decode");
    KK_EXPECT_CLOSE(taesd.encode(ctx, golden.view("encode_input")), golden.view("encode_output"), kVaeTolerance,
                    "encode");
  }
}

// On a heap host code cannot read (weights uploaded, inputs uploaded, outputs downloaded): matching diffusers
// there proves every step of TAESD goes through the backend.
TEST(AutoencoderTiny, RunsOnASeparateHeap) {
  testing::SeparateHeapBackend heap;
  {
    AutoencoderTiny taesd = AutoencoderTiny::load(kDir / "tiny-taesd");
    upload_weights(taesd, heap);
    const SafetensorsFile golden = goldens();
    auto to_device = [&](const TensorView& host) {
      Tensor t = heap.empty(host.shape, host.dtype);
      heap.upload(host, t);
      return t;
    };
    auto to_host = [&](const TensorView& device) {
      Tensor t = Tensor::empty(device.shape, device.dtype);
      heap.download(device, t);
      return t;
    };
    Arena arena(heap);
    Context ctx{heap, arena, {}};
    KK_EXPECT_CLOSE(to_host(taesd.decode(ctx, to_device(golden.view("decode_input")))), golden.view("decode_output"),
                    kVaeTolerance, "decode");
    KK_EXPECT_CLOSE(to_host(taesd.encode(ctx, to_device(golden.view("encode_input")))), golden.view("encode_output"),
                    kVaeTolerance, "encode");
  }
  EXPECT_EQ(heap.live_bytes(), 0u);
}

TEST(AutoencoderTiny, SlicingGivesTheSameImages) {
  const AutoencoderTiny taesd = AutoencoderTiny::load(kDir / "tiny-taesd");
  const SafetensorsFile golden = goldens();
  Arena arena;
  Context ctx{cpu_backend(), arena, {}};
  VaeMemoryOptions sliced;
  sliced.slicing = true;
  KK_EXPECT_CLOSE(taesd.decode(ctx, golden.view("decode_input"), sliced), golden.view("decode_output"), kVaeTolerance);
}

TEST(AutoencoderTiny, LoadAutoencoderPicksTheClass) {
  const LoadedAutoencoder tiny = load_autoencoder(kDir / "tiny-taesd", std::nullopt);
  EXPECT_STREQ(tiny.model->class_name(), "AutoencoderTiny");
  EXPECT_EQ(tiny.model->latent_channels(), 4);
  EXPECT_EQ(tiny.model->downscale_factor(), 8);
  EXPECT_EQ(tiny.model->scaling_factor(), 1.0f);
  const SafetensorsFile golden = goldens();
  Arena arena;
  Context ctx{cpu_backend(), arena, {}};
  KK_EXPECT_CLOSE(tiny.model->decode(ctx, golden.view("decode_input"), {}), golden.view("decode_output"),
                  kVaeTolerance, "through the interface");
}

JsonConfig config_with(const nlohmann::json& changes) {
  nlohmann::json j = nlohmann::json::parse(std::ifstream(kDir / "tiny-taesd/config.json"));
  for (auto it = changes.begin(); it != changes.end(); ++it) j[it.key()] = it.value();
  return JsonConfig(j, "config.json");
}

TEST(AutoencoderTiny, BadConfigsAreErrors) {
  EXPECT_NO_THROW(AutoencoderTinyConfig::parse(config_with({})));
  for (const char* bad : {R"({"act_fn": "silu"})", R"({"upsample_fn": "bilinear"})",
                          R"({"upsampling_scaling_factor": 3})", R"({"encoder_block_out_channels": [8, 16, 16, 16]})",
                          R"({"num_encoder_blocks": [1, 1]})", R"({"decoder_block_out_channels": []})",
                          R"({"num_decoder_blocks": [1, 1, 1, -1]})", R"({"latent_channels": 0})",
                          R"({"decoder_block_out_channels": [8, 8], "num_decoder_blocks": [1, 1]})",
                          R"({"block_out_channels": [4, 4, 4, 4]})", R"({"scaling_factor": 0})",
                          R"({"encoder_block_out_channels": [100000, 100000, 100000, 100000]})"}) {
    SCOPED_TRACE(bad);
    EXPECT_THROW(AutoencoderTinyConfig::parse(config_with(nlohmann::json::parse(bad))), Error);
  }
}

TEST(AutoencoderTiny, UnknownVaeClassAndBadInputsAreErrors) {
  const std::filesystem::path dir = std::filesystem::path(::testing::TempDir()) / "kk_vae_class";
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "config.json") << R"({"_class_name": "AutoencoderOobleck"})";
  try {
    load_autoencoder(dir, std::nullopt);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("AutoencoderOobleck"), std::string::npos) << e.what();
  }
  const AutoencoderTiny taesd = AutoencoderTiny::load(kDir / "tiny-taesd");
  Arena arena;
  Context ctx{cpu_backend(), arena, {}};
  EXPECT_THROW(taesd.decode(ctx, Tensor::zeros({1, 3, 4, 4})), Error);   // wrong latent channels
  EXPECT_THROW(taesd.encode(ctx, Tensor::zeros({1, 3, 20, 20})), Error);  // not a multiple of 8
}

// Hostile VAE folders: a config that is not one, a weight file with wrong shapes or missing tensors, a
// truncated safetensors file. Each is an Error naming the problem, never a crash.
TEST(AutoencoderTiny, HostileFoldersGiveCleanErrors) {
  const std::filesystem::path root = std::filesystem::path(::testing::TempDir()) / "kk_taesd_hostile";
  std::filesystem::remove_all(root);
  const std::string good_config = [] {
    std::ifstream in(kDir / "tiny-taesd/config.json");
    return std::string(std::istreambuf_iterator<char>(in), {});
  }();
  auto folder = [&](const std::string& name, const std::string& config, const std::filesystem::path& weights_from,
                    std::optional<size_t> truncate = std::nullopt) {
    const std::filesystem::path dir = root / name;
    std::filesystem::create_directories(dir);
    std::ofstream(dir / "config.json") << config;
    if (!weights_from.empty()) {
      std::ifstream in(weights_from, std::ios::binary);
      std::string bytes(std::istreambuf_iterator<char>(in), {});
      if (truncate) bytes.resize(*truncate);
      std::ofstream(dir / "diffusion_pytorch_model.safetensors", std::ios::binary) << bytes;
    }
    return dir;
  };
  const std::filesystem::path weights = kDir / "tiny-taesd/diffusion_pytorch_model.safetensors";
  std::string wider = good_config;  // 16 channels: every tensor's shape differs from the file's
  for (size_t at; (at = wider.find(" 8")) != std::string::npos;) wider.replace(at, 2, " 16");
  std::string more = good_config;  // one more decoder block than the file holds
  const std::string first_count = "\"num_decoder_blocks\": [\n    1";
  more.replace(more.find(first_count), first_count.size(), "\"num_decoder_blocks\": [\n    2");
  const std::pair<std::filesystem::path, const char*> cases[] = {
      {folder("not_json", "{\"_class_name\": \"AutoencoderTiny\", ", weights), "config.json"},
      {folder("list", "[1, 2]", weights), "config.json"},
      {folder("wider", wider, weights), "encoder.layers.0.weight: expected [16, 3, 3, 3]"},
      {folder("more_blocks", more, weights), "missing"},
      {folder("truncated", good_config, weights, 1000), "safetensors"},
      {folder("no_weights", good_config, {}), "no weights"},
  };
  for (const auto& [dir, expected] : cases) {
    SCOPED_TRACE(dir.filename().string());
    try {
      load_autoencoder(dir, std::nullopt);
      ADD_FAILURE() << "no error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what();
    }
  }
  std::filesystem::remove_all(root);
}

}  // namespace
}  // namespace kakusan
