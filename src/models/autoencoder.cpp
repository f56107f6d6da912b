#include "models/autoencoder.h"

#include "io/model_folder.h"
#include "models/model_folder_load.h"

namespace kakusan {

namespace {

template <typename Model, typename Config>
LoadedAutoencoder load_as(const std::filesystem::path& dir, std::optional<DType> weight_dtype,
                          const std::string& variant, const char* name) {
  LoadedModel<Model> loaded = load_model_and_store<Model, Config>(dir, weight_dtype, variant, "diffusers", name);
  return {std::make_unique<AutoencoderOf<Model>>(std::move(loaded.model), name), std::move(loaded.store)};
}

// config.json's "_class_name" (AutoencoderKL when absent, as older folders), checked to be one we build.
std::string vae_class(const JsonConfig& config) {
  const std::string name = config.get<std::string>("_class_name", "AutoencoderKL");
  KK_CHECK(name == "AutoencoderKL" || name == "AutoencoderTiny", config.source(), ": VAE class \"", name,
           "\" is not supported (AutoencoderKL or AutoencoderTiny)");
  return name;
}

template <typename Config>
AutoencoderInfo info_of(const std::string& name, const Config& c) {
  return {name, c.latent_channels, c.downscale_factor(), c.scaling_factor};
}

}  // namespace

std::filesystem::path resolve_vae_dir(const std::string& path_or_id) {
  const std::filesystem::path root = resolve_model_path(path_or_id);
  if (std::filesystem::is_regular_file(root / "config.json")) return root;
  if (std::filesystem::is_regular_file(root / "vae" / "config.json")) return root / "vae";
  fail("VAE '", path_or_id, "': ", root.string(), " has neither config.json nor vae/config.json");
}

AutoencoderInfo read_autoencoder_info(const std::filesystem::path& dir) {
  const JsonConfig config = JsonConfig::load(dir / "config.json");
  const std::string name = vae_class(config);
  if (name == "AutoencoderTiny") return info_of(name, AutoencoderTinyConfig::parse(config));
  return info_of(name, AutoencoderKLConfig::parse(config));
}

std::unique_ptr<Autoencoder> load_autoencoder_from(const JsonConfig& config, const WeightSource& weights,
                                                   DType weight_dtype) {
  if (vae_class(config) == "AutoencoderTiny")
    return std::make_unique<AutoencoderOf<AutoencoderTiny>>(
        load_model_from<AutoencoderTiny, AutoencoderTinyConfig>(config, weights, weight_dtype, "AutoencoderTiny"),
        "AutoencoderTiny");
  return std::make_unique<AutoencoderOf<AutoencoderKL>>(
      load_model_from<AutoencoderKL, AutoencoderKLConfig>(config, weights, weight_dtype, "AutoencoderKL"),
      "AutoencoderKL");
}

LoadedAutoencoder load_autoencoder(const std::filesystem::path& dir, std::optional<DType> weight_dtype,
                                   const std::string& variant) {
  const JsonConfig config = JsonConfig::load(dir / "config.json");
  if (vae_class(config) == "AutoencoderTiny")
    return load_as<AutoencoderTiny, AutoencoderTinyConfig>(dir, weight_dtype, variant, "AutoencoderTiny");
  return load_as<AutoencoderKL, AutoencoderKLConfig>(dir, weight_dtype, variant, "AutoencoderKL");
}

}  // namespace kakusan
