#include "pipeline/model_sources.h"

#include "core/error.h"
#include "io/model_folder.h"
#include "io/weight_store.h"
#include "models/model_folder_load.h"
#include "models/single_file.h"

namespace kakusan {

namespace {

// The folder of a VAE given on its own: a VAE folder (config.json at its root, like
// stabilityai/sd-vae-ft-mse) or a whole model folder whose vae/ is used.
std::filesystem::path resolve_vae_dir(const std::string& path_or_id) {
  const std::filesystem::path root = resolve_model_path(path_or_id);
  if (std::filesystem::is_regular_file(root / "config.json")) return root;
  if (std::filesystem::is_regular_file(root / "vae" / "config.json")) return root / "vae";
  fail("VAE '", path_or_id, "': ", root.string(), " has neither config.json nor vae/config.json");
}

ComponentSource folder_component(const std::filesystem::path& dir, const std::string& variant,
                                 const std::string& library) {
  return {JsonConfig::load(dir / "config.json"),
          std::make_shared<const WeightStore>(WeightStore::open(find_weight_files(dir, variant, library).files))};
}

ModelSources open_folder(const std::filesystem::path& root, const LoadOptions& options, const std::string& variant) {
  KK_CHECK(!options.config && !options.tokenizer, root.string(),
           ": --config / --tokenizer are for single-file checkpoints; a model folder has its own");
  const ModelFolder folder = ModelFolder::open(root);
  for (const char* component : {"unet", "text_encoder", "tokenizer", "scheduler"})
    KK_CHECK(folder.has_component(component), root.string(), "/model_index.json: no \"", component,
             "\" component (is this a Stable Diffusion model folder?)");
  KK_CHECK(options.vae || folder.has_component("vae"), root.string(), "/model_index.json: no \"vae\" component");
  ModelSources sources;
  sources.root = root;
  sources.scheduler_config = folder.load_config("scheduler");
  sources.scheduler_class = folder.component("scheduler").class_name;
  sources.tokenizer_dir = folder.component_dir("tokenizer");
  sources.text_encoder = folder_component(folder.component_dir("text_encoder"), variant, "transformers");
  sources.unet = folder_component(folder.component_dir("unet"), variant, "diffusers");
  if (!options.vae) {
    sources.vae_origin = folder.component_dir("vae").string();
    sources.vae = folder_component(folder.component_dir("vae"), variant, "diffusers");
  }
  return sources;
}

ModelSources open_single_file(const std::filesystem::path& file, const LoadOptions& options) {
  const SingleFileCheckpoint ckpt = SingleFileCheckpoint::open(file, {options.config, options.tokenizer});
  ModelSources sources;
  sources.root = file;
  sources.scheduler_config = ckpt.scheduler_config();
  sources.scheduler_class = ckpt.scheduler_class();
  sources.tokenizer_dir = ckpt.tokenizer_dir();
  sources.text_encoder = ckpt.text_encoder();
  sources.unet = ckpt.unet();
  sources.vae = ckpt.vae();
  sources.vae_origin = file.string();
  return sources;
}

}  // namespace

DType matrix_dtype(WeightDType requested, const WeightSource& weights) {
  switch (requested) {
    case WeightDType::F32: return DType::F32;
    case WeightDType::F16: return DType::F16;
    case WeightDType::BF16: return DType::BF16;
    case WeightDType::Auto: break;
  }
  return stored_matrix_dtype(weights);
}

ModelSources open_model_sources(const std::string& model, const LoadOptions& options) {
  std::string variant = options.variant;
  if (variant.empty() && options.dtype == WeightDType::F16) variant = "fp16";
  ModelSources sources = std::filesystem::is_regular_file(model)
                             ? open_single_file(model, options)
                             : open_folder(resolve_model_path(model), options, variant);
  if (options.vae) {
    const std::filesystem::path dir = resolve_vae_dir(*options.vae);
    sources.vae_origin = dir.string();
    sources.vae = folder_component(dir, variant, "diffusers");
  }
  return sources;
}

}  // namespace kakusan
