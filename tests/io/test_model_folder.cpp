// ModelFolder, find_weight_files and resolve_model_path on the kit's models and on folders built here.
#include "io/model_folder.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <optional>
#include <string>

#include "io/scratch_dir.h"
#include "support/golden.h"

namespace kakusan {
namespace {

namespace fs = std::filesystem;
using testing::ScratchDir;

// The message of the Error thrown by fn, or "" if it did not throw one.
template <typename Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// Sets an environment variable for the lifetime of the object, restoring the old value afterwards.
class ScopedEnv {
 public:
  ScopedEnv(const char* key, const std::optional<std::string>& value) : key_(key) {
    if (const char* old = std::getenv(key)) old_ = old;
    if (value) {
      ::setenv(key, value->c_str(), 1);
    } else {
      ::unsetenv(key);
    }
  }
  ~ScopedEnv() {
    if (old_) {
      ::setenv(key_, old_->c_str(), 1);
    } else {
      ::unsetenv(key_);
    }
  }

 private:
  const char* key_;
  std::optional<std::string> old_;
};

const char* kIndex = R"({
  "_class_name": "StableDiffusionPipeline",
  "_diffusers_version": "0.29.2",
  "requires_safety_checker": false,
  "safety_checker": [null, null],
  "scheduler": ["diffusers", "EulerDiscreteScheduler"],
  "text_encoder": ["transformers", "CLIPTextModel"],
  "unet": ["diffusers", "UNet2DConditionModel"],
  "vae": ["diffusers", "AutoencoderKL"]
})";

TEST(ModelFolderGolden, TinySdComponentsConfigsAndWeights) {
  KK_REQUIRE_GOLDEN();
  const ModelFolder model = ModelFolder::open(*testing::golden_dir() / "tiny-sd");
  const ModelIndex& index = model.index();
  EXPECT_EQ(index.class_name, "StableDiffusionPipeline");
  EXPECT_EQ(index.diffusers_version, "0.29.2");
  ASSERT_EQ(index.components.size(), 8u);  // 5 real components + safety_checker, feature_extractor, image_encoder
  EXPECT_FALSE(index.json.get<bool>("requires_safety_checker", true));

  EXPECT_TRUE(model.has_component("unet"));
  EXPECT_FALSE(model.has_component("safety_checker"));  // [null, null]
  EXPECT_FALSE(model.has_component("controlnet"));      // not listed
  EXPECT_EQ(model.component("unet").library, "diffusers");
  EXPECT_EQ(model.component("unet").class_name, "UNet2DConditionModel");
  EXPECT_EQ(model.component("text_encoder").library, "transformers");
  EXPECT_EQ(model.component("scheduler").class_name, "PNDMScheduler");
  ASSERT_NE(index.find("feature_extractor"), nullptr);
  EXPECT_TRUE(index.find("feature_extractor")->is_null());

  EXPECT_EQ(model.component_dir("vae"), model.root() / "vae");
  EXPECT_EQ(model.load_config("unet").require<int>("in_channels"), 4);
  EXPECT_EQ(model.config_path("scheduler").filename(), "scheduler_config.json");
  EXPECT_EQ(model.load_config("scheduler").require<std::string>("_class_name"), "PNDMScheduler");
  EXPECT_EQ(model.load_config("text_encoder").require<int>("hidden_size"), 32);
  EXPECT_EQ(model.load_config("tokenizer").require<int>("model_max_length"), 77);

  const WeightFiles unet = model.weight_files("unet");
  ASSERT_EQ(unet.files.size(), 1u);
  EXPECT_EQ(unet.files[0].filename(), "diffusion_pytorch_model.safetensors");
  EXPECT_FALSE(unet.index.has_value());
  EXPECT_FALSE(unet.is_variant);
  const WeightFiles te = model.weight_files("text_encoder", "fp16");  // no fp16 files: falls back
  ASSERT_EQ(te.files.size(), 1u);
  EXPECT_EQ(te.files[0].filename(), "model.safetensors");
  EXPECT_FALSE(te.is_variant);

  EXPECT_NE(error_of([&] { model.component("safety_checker"); }).find("null"), std::string::npos);
  const std::string missing = error_of([&] { model.component_dir("controlnet"); });
  EXPECT_NE(missing.find("controlnet"), std::string::npos) << missing;
  EXPECT_NE(missing.find("unet"), std::string::npos) << "should list what exists: " << missing;
}

TEST(ModelFolderGolden, TinySdVAndStandaloneVae) {
  KK_REQUIRE_GOLDEN();
  const ModelFolder model = ModelFolder::open(*testing::golden_dir() / "tiny-sd-v");
  EXPECT_EQ(model.component("scheduler").class_name, "DDIMScheduler");
  EXPECT_EQ(model.load_config("scheduler").require<std::string>("prediction_type"), "v_prediction");
  EXPECT_TRUE(model.load_config("unet").require<bool>("use_linear_projection"));

  const fs::path vae_dir = *testing::golden_dir() / "tiny-vae-alt";
  const WeightFiles vae = find_weight_files(vae_dir);
  ASSERT_EQ(vae.files.size(), 1u);
  EXPECT_EQ(vae.files[0], vae_dir / "diffusion_pytorch_model.safetensors");
  // A component folder is not a model folder; the error says what to do instead.
  const std::string err = error_of([&] { ModelFolder::open(vae_dir); });
  EXPECT_NE(err.find("model_index.json"), std::string::npos) << err;
}

TEST(ModelFolder, VariantFilesArePreferred) {
  ScratchDir dir;
  dir.write("model_index.json", kIndex);
  dir.write("unet/config.json", "{}");
  dir.write("unet/diffusion_pytorch_model.safetensors", "x");
  dir.write("unet/diffusion_pytorch_model.fp16.safetensors", "x");
  dir.write("text_encoder/model.fp16.safetensors", "x");
  const ModelFolder model = ModelFolder::open(dir.path());

  const WeightFiles plain = model.weight_files("unet");
  EXPECT_EQ(plain.files.at(0).filename(), "diffusion_pytorch_model.safetensors");
  const WeightFiles fp16 = model.weight_files("unet", "fp16");
  EXPECT_EQ(fp16.files.at(0).filename(), "diffusion_pytorch_model.fp16.safetensors");
  EXPECT_TRUE(fp16.is_variant);
  EXPECT_EQ(model.weight_files("text_encoder", "fp16").files.at(0).filename(), "model.fp16.safetensors");
  // Only the variant exists and none was asked for: diffusers would not find weights either.
  const std::string err = error_of([&] { model.weight_files("text_encoder"); });
  EXPECT_NE(err.find("model.safetensors"), std::string::npos) << err;
  // The library decides the file name family: a diffusers component does not pick up model.safetensors.
  dir.write("vae/model.safetensors", "x");
  EXPECT_NE(error_of([&] { model.weight_files("vae"); }).find("diffusion_pytorch_model.safetensors"),
            std::string::npos);
}

TEST(ModelFolder, ShardedCheckpoint) {
  ScratchDir dir;
  dir.write("unet/diffusion_pytorch_model-00001-of-00002.safetensors", "x");
  dir.write("unet/diffusion_pytorch_model-00002-of-00002.safetensors", "x");
  dir.write("unet/diffusion_pytorch_model.safetensors.index.json", R"({
    "metadata": {"total_size": 10},
    "weight_map": {"a.weight": "diffusion_pytorch_model-00001-of-00002.safetensors",
                   "b.weight": "diffusion_pytorch_model-00002-of-00002.safetensors",
                   "c.weight": "diffusion_pytorch_model-00001-of-00002.safetensors"}})");
  const WeightFiles w = find_weight_files(dir / "unet");
  ASSERT_EQ(w.files.size(), 2u);  // each shard once
  EXPECT_EQ(w.files[0], dir / "unet/diffusion_pytorch_model-00001-of-00002.safetensors");
  EXPECT_EQ(w.files[1], dir / "unet/diffusion_pytorch_model-00002-of-00002.safetensors");
  ASSERT_TRUE(w.index.has_value());
  EXPECT_EQ(w.index->filename(), "diffusion_pytorch_model.safetensors.index.json");

  // diffusers names a sharded variant's index "<name>.safetensors.index.fp16.json".
  dir.write("unet/diffusion_pytorch_model.fp16-00001-of-00001.safetensors", "x");
  dir.write("unet/diffusion_pytorch_model.safetensors.index.fp16.json",
            R"({"weight_map": {"a": "diffusion_pytorch_model.fp16-00001-of-00001.safetensors"}})");
  const WeightFiles v = find_weight_files(dir / "unet", "fp16", "diffusers");
  ASSERT_EQ(v.files.size(), 1u);
  EXPECT_EQ(v.files[0].filename(), "diffusion_pytorch_model.fp16-00001-of-00001.safetensors");
  EXPECT_TRUE(v.is_variant);
}

TEST(ModelFolder, ShardIndexIsValidated) {
  auto index_error = [](const std::string& index_json) {
    ScratchDir dir;
    dir.write("outside.safetensors", "x");
    dir.write("te/model-1.safetensors", "x");
    dir.write("te/model.safetensors.index.json", index_json);
    return error_of([&] { find_weight_files(dir / "te"); });
  };
  EXPECT_NE(index_error(R"({"weight_map": {"a": "../outside.safetensors"}})").find("outside the folder"),
            std::string::npos);
  EXPECT_NE(index_error(R"({"weight_map": {"a": "/etc/passwd"}})").find("relative"), std::string::npos);
  EXPECT_NE(index_error(R"({"weight_map": {"a": "model-2.safetensors"}})").find("missing"), std::string::npos);
  EXPECT_NE(index_error(R"({"weight_map": {"a": "model-1.bin"}})").find("safetensors"), std::string::npos);
  EXPECT_NE(index_error(R"({"weight_map": {"a": 3}})").find("'a'"), std::string::npos);
  EXPECT_NE(index_error(R"({"metadata": {}})").find("weight_map"), std::string::npos);
  EXPECT_NE(index_error(R"({"weight_map": {}})").find("empty"), std::string::npos);
  EXPECT_NE(index_error("[1, 2").find("JSON"), std::string::npos);
  // A path that leaves and re-enters the folder is fine.
  EXPECT_EQ(index_error(R"({"weight_map": {"a": "../te/model-1.safetensors"}})").find("outside"), std::string::npos);
}

TEST(ModelFolder, PickleOnlyAndEmptyFoldersAreExplained) {
  ScratchDir dir;
  dir.write("unet/config.json", "{}");
  dir.write("unet/diffusion_pytorch_model.bin", "x");
  const std::string pickle = error_of([&] { find_weight_files(dir / "unet"); });
  EXPECT_NE(pickle.find("diffusion_pytorch_model.bin"), std::string::npos) << pickle;
  EXPECT_NE(pickle.find("not"), std::string::npos) << pickle;
  EXPECT_NE(pickle.find("safetensors"), std::string::npos) << pickle;

  dir.write("vae/config.json", "{}");
  const std::string none = error_of([&] { find_weight_files(dir / "vae", "fp16"); });
  EXPECT_NE(none.find("diffusion_pytorch_model.fp16.safetensors"), std::string::npos) << none;
  EXPECT_NE(none.find("model.safetensors.index.json"), std::string::npos) << none;
  EXPECT_NE(none.find((dir / "vae").string()), std::string::npos) << none;

  EXPECT_NE(error_of([&] { find_weight_files(dir / "nope"); }).find("does not exist"), std::string::npos);
}

TEST(ModelFolder, BadModelIndex) {
  auto open_error = [](const std::string& index_json) {
    ScratchDir dir;
    dir.write("model_index.json", index_json);
    return error_of([&] { ModelFolder::open(dir.path()); });
  };
  EXPECT_EQ(open_error(kIndex), "");
  EXPECT_NE(open_error(R"({"unet": ["diffusers", "UNet2DConditionModel"]})").find("_class_name"), std::string::npos);
  EXPECT_NE(open_error(R"({"_class_name": "X", "unet": ["diffusers"]})").find("\"unet\""), std::string::npos);
  EXPECT_NE(open_error(R"({"_class_name": "X", "unet": [1, 2]})").find("pair"), std::string::npos);
  EXPECT_NE(open_error("not json").find("JSON"), std::string::npos);
  EXPECT_NE(open_error("[]").find("object"), std::string::npos);

  ScratchDir empty;
  EXPECT_NE(error_of([&] { ModelFolder::open(empty.path()); }).find("model_index.json"), std::string::npos);
  EXPECT_NE(error_of([&] { ModelFolder::open(empty / "missing"); }).find("does not exist"), std::string::npos);

  ScratchDir no_dir;
  no_dir.write("model_index.json", kIndex);
  const ModelFolder model = ModelFolder::open(no_dir.path());
  EXPECT_NE(error_of([&] { model.component_dir("unet"); }).find("missing"), std::string::npos);
  EXPECT_NE(error_of([&] { model.load_config("vae"); }).find("vae"), std::string::npos);
}

// A fake Hugging Face cache: models--org--name/{refs/main, snapshots/<hash>/..., blobs/...} with the
// snapshot's files symlinked into blobs, as huggingface_hub lays them out.
struct FakeHubCache {
  ScratchDir dir;
  std::string commit = "0123456789abcdef0123456789abcdef01234567";
  fs::path repo = dir / "hub/models--org--tiny-model";
  fs::path snapshot = repo / "snapshots" / commit;

  FakeHubCache() {
    dir.write("hub/models--org--tiny-model/refs/main", commit + "\n");
    dir.write("hub/models--org--tiny-model/blobs/aaa", kIndex);
    dir.write("hub/models--org--tiny-model/blobs/bbb", "x");
    dir.write("hub/models--org--tiny-model/blobs/ccc", R"({"weight_map": {"a": "model-1.safetensors"}})");
    fs::create_directories(snapshot / "unet");
    fs::create_directories(snapshot / "text_encoder");
    fs::create_symlink("../../blobs/aaa", snapshot / "model_index.json");
    fs::create_symlink("../../../blobs/bbb", snapshot / "unet/diffusion_pytorch_model.safetensors");
    fs::create_symlink("../../../blobs/ccc", snapshot / "text_encoder/model.safetensors.index.json");
    fs::create_symlink("../../../blobs/bbb", snapshot / "text_encoder/model-1.safetensors");
  }
};

TEST(ResolveModelPath, HubCacheThroughRefsMain) {
  FakeHubCache cache;
  const ScopedEnv hub("HF_HUB_CACHE", (cache.dir / "hub").string());
  const fs::path path = resolve_model_path("org/tiny-model");
  EXPECT_EQ(path, cache.snapshot);
  const ModelFolder model = ModelFolder::open(path);
  EXPECT_EQ(model.weight_files("unet").files.at(0), cache.snapshot / "unet/diffusion_pytorch_model.safetensors");
  // Shards are symlinks into blobs/, outside the snapshot: still accepted (checked lexically).
  EXPECT_EQ(model.weight_files("text_encoder").files.at(0), cache.snapshot / "text_encoder/model-1.safetensors");
  EXPECT_EQ(resolve_model_path("org/tiny-model", cache.commit), cache.snapshot);

  const std::string no_ref = error_of([] { resolve_model_path("org/tiny-model", "v2"); });
  EXPECT_NE(no_ref.find("refs/v2"), std::string::npos) << no_ref;
  const std::string absent = error_of([] { resolve_model_path("org/other-model"); });
  EXPECT_NE(absent.find("models--org--other-model"), std::string::npos) << absent;
  EXPECT_NE(absent.find((cache.dir / "hub").string()), std::string::npos) << absent;
}

TEST(ResolveModelPath, CacheLocationFallbacks) {
  FakeHubCache cache;
  const ScopedEnv hub("HF_HUB_CACHE", std::nullopt);
  const ScopedEnv legacy("HUGGINGFACE_HUB_CACHE", std::nullopt);
  {
    const ScopedEnv home("HF_HOME", cache.dir.path().string());  // $HF_HOME/hub
    EXPECT_EQ(hf_hub_cache_dir(), cache.dir / "hub");
    EXPECT_EQ(resolve_model_path("org/tiny-model"), cache.snapshot);
  }
  const ScopedEnv no_hf_home("HF_HOME", std::nullopt);
  const ScopedEnv no_xdg("XDG_CACHE_HOME", std::nullopt);
  const ScopedEnv home("HOME", "/home/someone");
  EXPECT_EQ(hf_hub_cache_dir(), fs::path("/home/someone/.cache/huggingface/hub"));
}

TEST(ResolveModelPath, PlainPathWinsAndBadInput) {
  FakeHubCache cache;
  const ScopedEnv hub("HF_HUB_CACHE", (cache.dir / "hub").string());
  EXPECT_EQ(resolve_model_path(cache.snapshot.string()), cache.snapshot);
  // A folder in the working directory named like a hub id is used as a folder.
  ScratchDir local;
  fs::create_directories(local / "org/tiny-model");
  const fs::path old_cwd = fs::current_path();
  fs::current_path(local.path());
  const fs::path local_path = resolve_model_path("org/tiny-model");
  fs::current_path(old_cwd);
  EXPECT_EQ(local_path, fs::path("org/tiny-model"));

  EXPECT_NE(error_of([] { resolve_model_path("./not/here"); }).find("no such folder"), std::string::npos);
  EXPECT_NE(error_of([] { resolve_model_path("a/b/c"); }).find("no such folder"), std::string::npos);
  // A corrupt ref file.
  cache.dir.write("hub/models--org--tiny-model/refs/main", "not-a-hash");
  EXPECT_NE(error_of([] { resolve_model_path("org/tiny-model"); }).find("commit hash"), std::string::npos);
}

}  // namespace
}  // namespace kakusan
