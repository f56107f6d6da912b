// A diffusers model folder (what DiffusionPipeline.from_pretrained reads): model_index.json names the
// pipeline class and its components; each component lives in a sub-folder with a config and weights.
//
//   ModelFolder model = ModelFolder::open(resolve_model_path("runwayml/stable-diffusion-v1-5"));
//   JsonConfig unet_cfg = model.load_config("unet");                  // unet/config.json
//   WeightFiles unet_w = model.weight_files("unet", "fp16");          // variant preferred, else default
//   WeightStore store = WeightStore::open(unet_w.files);
//
// Weight files are found the way diffusers / transformers name them: diffusion_pytorch_model.safetensors
// (diffusers models), model.safetensors (transformers models), `variant` files (.fp16.safetensors) and
// sharded checkpoints (*.safetensors.index.json). Pickle (.bin) checkpoints are recognised but refused.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "io/json_config.h"

namespace kakusan {

// One entry of model_index.json, e.g. "unet": ["diffusers", "UNet2DConditionModel"].
struct ComponentEntry {
  std::string name;        // "unet"
  std::string library;     // "diffusers", "transformers"; empty for [null, null]
  std::string class_name;  // "UNet2DConditionModel"; empty for [null, null]
  bool is_null() const { return class_name.empty(); }
};

// model_index.json, typed. Keys starting with '_' are metadata; [library, class] pairs are components;
// anything else (e.g. requires_safety_checker) stays available through `json`.
struct ModelIndex {
  std::string class_name;         // "_class_name", e.g. "StableDiffusionPipeline"
  std::string diffusers_version;  // "_diffusers_version"; empty if absent
  std::vector<ComponentEntry> components;  // sorted by name; null components included
  JsonConfig json;

  static ModelIndex parse(const JsonConfig& json);
  // nullptr if the index has no entry of that name.
  const ComponentEntry* find(const std::string& name) const;
};

// The weight files of one component, ready for WeightStore::open().
struct WeightFiles {
  std::vector<std::filesystem::path> files;  // one file, or the shards of a sharded checkpoint
  std::optional<std::filesystem::path> index;  // the *.safetensors.index.json of a sharded checkpoint
  bool is_variant = false;                     // true if the requested variant's files were found
};

// Finds the weights in a component folder (a model sub-folder, or a standalone one such as `--vae DIR`).
// `library` picks the file name family ("diffusers" -> diffusion_pytorch_model.*, "transformers" ->
// model.*); empty tries both. With a `variant` ("fp16"), variant files are preferred and the default
// files are used when the folder has none (as diffusers does for components saved without the variant).
// Throws Error saying what was looked for; pickle-only folders get an explicit "not supported" error.
WeightFiles find_weight_files(const std::filesystem::path& dir, const std::string& variant = "",
                              const std::string& library = "");

class ModelFolder {
 public:
  // Reads <dir>/model_index.json. Throws Error naming the folder if it is not a diffusers model folder.
  static ModelFolder open(const std::filesystem::path& dir);

  const std::filesystem::path& root() const { return root_; }
  const ModelIndex& index() const { return index_; }

  // True if model_index.json lists `name` with a non-null class.
  bool has_component(const std::string& name) const;
  // The component's entry; throws Error if absent or null.
  const ComponentEntry& component(const std::string& name) const;
  // <root>/<name>; throws Error if the component is not listed, is null, or its folder is missing.
  std::filesystem::path component_dir(const std::string& name) const;
  // The component's config file, named by its class as diffusers / transformers do: scheduler_config.json
  // (schedulers), tokenizer_config.json (tokenizers), preprocessor_config.json (feature extractors, image
  // processors), config.json (models).
  std::filesystem::path config_path(const std::string& name) const;
  JsonConfig load_config(const std::string& name) const;
  WeightFiles weight_files(const std::string& name, const std::string& variant = "") const;

 private:
  std::filesystem::path root_;
  ModelIndex index_;
};

// The Hugging Face hub cache folder, as huggingface_hub finds it: $HF_HUB_CACHE, else
// $HUGGINGFACE_HUB_CACHE, else $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub, else
// ~/.cache/huggingface/hub. The folder need not exist.
std::filesystem::path hf_hub_cache_dir();

// A model given as a folder path or a hub id ("runwayml/stable-diffusion-v1-5"), resolved offline: an
// existing folder wins; otherwise <cache>/models--<org>--<name>/refs/<revision> names the snapshot
// <cache>/models--<org>--<name>/snapshots/<commit>/ (a commit hash as revision is used directly).
// Throws Error saying where it looked.
// The model_index.json of a StableDiffusionPipeline folder that kakusan writes (random models, converted single
// files): the safety checker and feature extractor are null, as in a pipeline saved with safety_checker=None.
nlohmann::json stable_diffusion_model_index(const std::string& diffusers_version, const std::string& scheduler_class);

std::filesystem::path resolve_model_path(const std::string& path_or_id, const std::string& revision = "main");

}  // namespace kakusan
