// The VAE's Encoder (image -> 2·latent_channels moments) and Decoder (latents -> image), as diffusers'
// models/autoencoders/vae.py builds them from AutoencoderKL's config.
#pragma once

#include <vector>

#include "models/vae_blocks.h"
#include "models/vae_config.h"

namespace kakusan {

struct VaeEncoder {
  Conv2d conv_in;
  std::vector<DownEncoderBlock2D> down_blocks;
  VaeMidBlock mid_block;
  GroupNorm conv_norm_out;
  Conv2d conv_out;

  VaeEncoder() = default;
  explicit VaeEncoder(const AutoencoderKLConfig& c);

  void visit(WeightVisitor& v);
  Shape output_shape(const Shape& x) const;
  // x [B, in_channels, H, W] -> y [B, 2·latent_channels, H/f, W/f].
  void forward(Context& ctx, const TensorView& x, const TensorView& y) const;
};

struct VaeDecoder {
  Conv2d conv_in;
  VaeMidBlock mid_block;
  std::vector<UpDecoderBlock2D> up_blocks;
  GroupNorm conv_norm_out;
  Conv2d conv_out;

  VaeDecoder() = default;
  explicit VaeDecoder(const AutoencoderKLConfig& c);

  void visit(WeightVisitor& v);
  Shape output_shape(const Shape& z) const;
  // z [B, latent_channels, h, w] -> y [B, out_channels, h·f, w·f].
  void forward(Context& ctx, const TensorView& z, const TensorView& y) const;
};

}  // namespace kakusan
