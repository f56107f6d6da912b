// A Stable Diffusion 1.x / 2.x single-file checkpoint (the original CompVis layout in one .safetensors) seen
// as diffusers components, as diffusers' StableDiffusionPipeline.from_single_file(FILE, config=...) sees it.
//
// Nothing is copied: each component is the file's mapping behind the rename tables of io/checkpoint_tables.h
// (and, for SD 2.x's OpenCLIP text encoder, a split of the fused attention projection). The configs come
// from --config (a diffusers folder or hub id) or, without it, from the built-in configs of the repo diffusers
// would fetch for the detected type (runwayml/stable-diffusion-v1-5, stabilityai/stable-diffusion-2-1).
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "io/json_config.h"
#include "io/weight_store.h"
#include "models/component_source.h"

namespace kakusan {

struct SingleFileOptions {
  std::optional<std::string> config;     // a diffusers folder or hub id whose configs (and tokenizer) are used
  std::optional<std::string> tokenizer;  // a tokenizer folder (vocab.json, merges.txt, ...)
};

// What a file is, from its tensor names and shapes alone (diffusers' infer_diffusers_model_type for the
// types kakusan runs). Throws Error saying what the file is instead (SDXL, inpainting, not a checkpoint).
struct CheckpointType {
  std::string model_type;     // "v1" (SD 1.x) or "v2" (SD 2.x)
  bool open_clip = false;     // text encoder stored as OpenCLIP (cond_stage_model.model.*)
  std::string default_repo;   // the diffusers repo of the type's configs
};
CheckpointType detect_checkpoint_type(const WeightSource& file);

// Pickle files (.ckpt, .pt, .bin, a zip of pickles) are never executed: this throws an Error saying how to
// convert one to safetensors when `file` looks like one.
void refuse_pickle(const std::filesystem::path& file);

class SingleFileCheckpoint {
 public:
  // Throws Error naming the file and what is wrong (not a checkpoint, a pickle, an unsupported type,
  // a bad --config).
  static SingleFileCheckpoint open(const std::filesystem::path& file, const SingleFileOptions& options = {});

  const std::filesystem::path& file() const { return file_; }
  const CheckpointType& type() const { return type_; }
  const WeightStore& store() const { return *store_; }
  const ComponentSource& unet() const { return unet_; }
  const ComponentSource& vae() const { return vae_; }
  const ComponentSource& text_encoder() const { return text_encoder_; }
  const JsonConfig& scheduler_config() const { return scheduler_config_; }
  const std::string& scheduler_class() const { return scheduler_class_; }
  // The tokenizer folder, found as diffusers would offline: --tokenizer, --config's tokenizer/, the detected
  // type's repo in the Hugging Face cache (its tokenizer/), or openai/clip-vit-large-patch14 (SD 1.x).
  // Throws Error listing where it looked and how to get one.
  std::filesystem::path tokenizer_dir() const;

 private:
  std::filesystem::path file_;
  CheckpointType type_;
  std::shared_ptr<const WeightStore> store_;
  ComponentSource unet_, vae_, text_encoder_;
  JsonConfig scheduler_config_;
  std::string scheduler_class_;
  std::optional<std::string> tokenizer_option_, config_option_;
};

}  // namespace kakusan
