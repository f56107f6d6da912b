// AutoencoderKL (diffusers' models/autoencoders/autoencoder_kl.py), built from vae/config.json alone.
//
//   AutoencoderKL vae = AutoencoderKL::load(model_dir / "vae");
//   Tensor image = vae.decode(ctx, latents_divided_by_scaling_factor);      // [B, 3, 8h, 8w] in ~[-1, 1]
//   DiagonalGaussianDistribution dist = vae.encode(ctx, image);   // dist.sample(ctx.backend, generator)
//
// Memory levers, as diffusers' enable_vae_slicing / enable_vae_tiling: VaeMemoryOptions.
#pragma once

#include <filesystem>
#include <functional>

#include "core/generator.h"
#include "models/activations.h"
#include "models/vae_coders.h"

namespace kakusan {

struct VaeMemoryOptions {
  bool slicing = false;  // decode / encode one image of the batch at a time
  bool tiling = false;   // decode / encode inputs larger than a tile as overlapping tiles blended together
  int tile_size = 0;     // tile side in image pixels (a multiple of the downscale factor); 0: the config's
                         // sample_size, as diffusers (smaller tiles need less memory and blend more seams)
};

// The encoder's output distribution: moments = cat(mean, logvar) on channels, in the backend's memory.
struct DiagonalGaussianDistribution {
  Tensor moments, mean;  // mean: a copy of the first half of the channels

  static DiagonalGaussianDistribution from_moments(Backend& be, Tensor moments);
  // mean + exp(logvar / 2) · randn(mean.shape, generator), logvar clamped to [-30, 20] (diffusers'
  // latent_dist.sample(generator)); the noise is drawn on the host and uploaded.
  Tensor sample(Backend& be, Generator& generator) const;
  const Tensor& mode() const { return mean; }
  // The logvar channels as the encoder produced them (sample() clamps them).
  TensorView raw_logvar() const;
};

class AutoencoderKL {
 public:
  explicit AutoencoderKL(const AutoencoderKLConfig& config);
  static AutoencoderKL load(const std::filesystem::path& dir, DType weight_dtype = DType::F32);

  const AutoencoderKLConfig& config() const { return config_; }
  void visit(WeightVisitor& v);

  // z [B, latent_channels, h, w], already divided by scaling_factor (as the pipeline passes it) ->
  // [B, out_channels, h·f, w·f]. `trace` records post_quant_conv (untiled decoding only).
  Tensor decode(Context& ctx, const TensorView& z, const VaeMemoryOptions& options = {},
                Activations* trace = nullptr) const;
  // x [B, in_channels, H, W] in [-1, 1] -> the latent distribution (not scaled by scaling_factor).
  DiagonalGaussianDistribution encode(Context& ctx, const TensorView& x, const VaeMemoryOptions& options = {}) const;

  // Tiling geometry, as diffusers: tile_sample_min_size = sample_size, the latent tile is that / f, and
  // neighbouring tiles overlap by kTileOverlap of a tile.
  static constexpr double kTileOverlap = 0.25;
  int tile_sample_size(const VaeMemoryOptions& o) const { return o.tile_size > 0 ? o.tile_size : config_.sample_size; }
  int tile_latent_size(const VaeMemoryOptions& o) const { return tile_sample_size(o) / config_.downscale_factor(); }

 private:
  void decode_into(Context& ctx, const TensorView& z, const TensorView& out, Activations* trace) const;
  void encode_into(Context& ctx, const TensorView& x, const TensorView& moments) const;
  void run_tiled(Context& ctx, const TensorView& x, int64_t in_tile, int64_t out_tile,
                 const std::function<Shape(const Shape&)>& out_shape,
                 const std::function<void(const TensorView&, const TensorView&)>& run, const TensorView& out) const;

  AutoencoderKLConfig config_;
  VaeEncoder encoder;
  VaeDecoder decoder;
  Conv2d quant_conv, post_quant_conv;
};

}  // namespace kakusan
