// What a pipeline needs of its VAE, whichever class the folder holds: AutoencoderKL or AutoencoderTiny
// (diffusers' `vae=` swap, e.g. TAESD for fast previews and CPU runs).
//
//   LoadedAutoencoder vae = load_autoencoder(dir, std::nullopt);   // reads config.json's _class_name
//   Tensor image = vae.model->decode(ctx, latents_divided_by_scaling_factor, {});
#pragma once

#include <filesystem>
#include <limits>
#include <memory>
#include <optional>
#include <string>

#include "io/weight_store.h"
#include "models/autoencoder_kl.h"
#include "models/autoencoder_tiny.h"

namespace kakusan {

class Autoencoder {
 public:
  virtual ~Autoencoder() = default;
  virtual const char* class_name() const = 0;
  virtual int latent_channels() const = 0;
  virtual int downscale_factor() const = 0;  // image pixels per latent pixel
  virtual float scaling_factor() const = 0;  // the pipeline decodes latents / scaling_factor
  // Latent pixels per tile side when options.tiling applies (the memory planner sizes attention by it).
  virtual int64_t tile_latent_size(const VaeMemoryOptions& options) const = 0;
  // z [B, latent_channels, h, w] already divided by scaling_factor -> images [B, C, h·f, w·f] in ~[-1, 1].
  virtual Tensor decode(Context& ctx, const TensorView& z, const VaeMemoryOptions& options) const = 0;
  // diffusers' retrieve_latents(vae.encode(x), generator) on the backend, before scaling_factor: a draw from
  // the latent distribution with `generator` (AutoencoderKL), or the encoder's latents (AutoencoderTiny,
  // which draws nothing).
  virtual Tensor encode_latents(Context& ctx, const TensorView& x, const VaeMemoryOptions& options,
                                Generator& generator) const = 0;
  virtual void visit(WeightVisitor& v) = 0;
};

// The Autoencoder of a model class with AutoencoderKL's shape (config(), decode(), visit()).
template <typename Model>
class AutoencoderOf final : public Autoencoder {
 public:
  AutoencoderOf(Model model, const char* name) : model_(std::move(model)), name_(name) {}
  const char* class_name() const override { return name_; }
  int latent_channels() const override { return model_.config().latent_channels; }
  int downscale_factor() const override { return model_.config().downscale_factor(); }
  float scaling_factor() const override { return model_.config().scaling_factor; }
  int64_t tile_latent_size(const VaeMemoryOptions& options) const override;
  Tensor decode(Context& ctx, const TensorView& z, const VaeMemoryOptions& options) const override {
    return model_.decode(ctx, z, options);
  }
  Tensor encode_latents(Context& ctx, const TensorView& x, const VaeMemoryOptions& options,
                        Generator& generator) const override;
  void visit(WeightVisitor& v) override { model_.visit(v); }
  const Model& model() const { return model_; }

 private:
  Model model_;
  const char* name_;
};

template <>
inline int64_t AutoencoderOf<AutoencoderKL>::tile_latent_size(const VaeMemoryOptions& options) const {
  return model_.tile_latent_size(options);
}
template <>
inline Tensor AutoencoderOf<AutoencoderKL>::encode_latents(Context& ctx, const TensorView& x,
                                                           const VaeMemoryOptions& options,
                                                           Generator& generator) const {
  return model_.encode(ctx, x, options).sample(ctx.backend, generator);
}
template <>
inline Tensor AutoencoderOf<AutoencoderTiny>::encode_latents(Context& ctx, const TensorView& x,
                                                             const VaeMemoryOptions& options, Generator&) const {
  return model_.encode(ctx, x, options);
}
// AutoencoderTiny decodes untiled: a tile is the whole latent.
template <>
inline int64_t AutoencoderOf<AutoencoderTiny>::tile_latent_size(const VaeMemoryOptions&) const {
  return std::numeric_limits<int32_t>::max();
}

struct LoadedAutoencoder {
  std::unique_ptr<Autoencoder> model;
  WeightStore store;  // the mapped files the weights borrow from
};

// The folder of a VAE given on its own (`--vae`): a VAE folder (config.json at its root, like
// stabilityai/sd-vae-ft-mse or madebyollin/taesd) or a whole model folder whose vae/ is used.
std::filesystem::path resolve_vae_dir(const std::string& path_or_id);

// What the VAE in `dir` is, from its config.json alone (no weights read).
struct AutoencoderInfo {
  std::string class_name;
  int latent_channels = 4;
  int downscale_factor = 8;
  float scaling_factor = 1.0f;
};
AutoencoderInfo read_autoencoder_info(const std::filesystem::path& dir);

// The VAE in `dir` by its config.json's "_class_name" (AutoencoderKL when absent, as older folders); any
// other class is an Error naming it. `weight_dtype` nullopt keeps the stored dtype.
LoadedAutoencoder load_autoencoder(const std::filesystem::path& dir, std::optional<DType> weight_dtype,
                                   const std::string& variant = "");

// The same from a config and any weight source (a folder's files, a single file's renamed tensors).
std::unique_ptr<Autoencoder> load_autoencoder_from(const JsonConfig& config, const WeightSource& weights,
                                                   DType weight_dtype);

}  // namespace kakusan
