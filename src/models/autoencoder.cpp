#include "models/autoencoder.h"

#include "models/model_folder_load.h"

namespace kakusan {

namespace {

template <typename Model, typename Config>
LoadedAutoencoder load_as(const std::filesystem::path& dir, std::optional<DType> weight_dtype,
                          const std::string& variant, const char* name) {
  LoadedModel<Model> loaded = load_model_and_store<Model, Config>(dir, weight_dtype, variant, "diffusers", name);
  return {std::make_unique<AutoencoderOf<Model>>(std::move(loaded.model), name), std::move(loaded.store)};
}

}  // namespace

LoadedAutoencoder load_autoencoder(const std::filesystem::path& dir, std::optional<DType> weight_dtype,
                                   const std::string& variant) {
  const JsonConfig config = JsonConfig::load(dir / "config.json");
  const std::string name = config.get<std::string>("_class_name", "AutoencoderKL");
  if (name == "AutoencoderKL")
    return load_as<AutoencoderKL, AutoencoderKLConfig>(dir, weight_dtype, variant, "AutoencoderKL");
  if (name == "AutoencoderTiny")
    return load_as<AutoencoderTiny, AutoencoderTinyConfig>(dir, weight_dtype, variant, "AutoencoderTiny");
  fail(config.source(), ": VAE class \"", name, "\" is not supported (AutoencoderKL or AutoencoderTiny)");
}

}  // namespace kakusan
