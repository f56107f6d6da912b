// AutoencoderTiny (diffusers' models/autoencoders/autoencoder_tiny.py, madebyollin's TAESD): a plain conv +
// ReLU encoder and decoder with no attention or normalisation, built from its config.json alone.
//
//   AutoencoderTiny taesd = AutoencoderTiny::load(dir);                  // config.json: AutoencoderTiny
//   Tensor image = taesd.decode(ctx, latents / scaling_factor);           // [B, 3, 8h, 8w] in ~[-1, 1]
//   Tensor latents = taesd.encode(ctx, image);                           // [B, 4, H/8, W/8], raw latents
//
// Every op runs through ctx.backend (conv2d, activation, add, resize_nearest); outputs live on the backend.
#pragma once

#include <filesystem>
#include <vector>

#include "models/autoencoder_kl.h"  // VaeMemoryOptions
#include "models/autoencoder_tiny_config.h"
#include "nn/context.h"
#include "nn/layers.h"

namespace kakusan {

// diffusers' AutoencoderTinyBlock with in == out channels (the only form AutoencoderTiny builds):
// relu(conv(relu(conv(relu(conv(x))))) + x).
struct TinyBlock {
  Conv2d conv0, conv1, conv2;
  TinyBlock() = default;
  explicit TinyBlock(int64_t channels);
  void visit(WeightVisitor& v);
  // y may alias x.
  void forward(Context& ctx, const TensorView& x, const TensorView& y) const;
};

// One stage of the encoder or decoder: its blocks, then (decoder) ×2 upsampling, and the conv that follows
// them (decoder) or precedes them (encoder's stride-2 downsampling conv, absent in the first stage).
struct TinyStage {
  Conv2d conv;
  bool has_conv = true;
  std::vector<TinyBlock> blocks;
};

// EncoderTiny: (x + 1) / 2, conv, [stride-2 conv], blocks per stage, conv to latent channels.
struct EncoderTiny {
  Conv2d conv_in, conv_out;
  std::vector<TinyStage> stages;  // stage 0 has no downsampling conv (conv_in takes its place)
  explicit EncoderTiny(const AutoencoderTinyConfig& c);
  void visit(WeightVisitor& v);
  Shape output_shape(const Shape& x) const;
  void forward(Context& ctx, const TensorView& x, const TensorView& y) const;
};

// DecoderTiny: 3·tanh(z/3), conv + ReLU, per stage blocks, [×2 upsample], conv, then 2x - 1.
struct DecoderTiny {
  Conv2d conv_in;
  std::vector<TinyStage> stages;  // the last stage's conv is the bias-carrying conv to image channels
  explicit DecoderTiny(const AutoencoderTinyConfig& c);
  void visit(WeightVisitor& v);
  Shape output_shape(const Shape& z) const;
  void forward(Context& ctx, const TensorView& z, const TensorView& y) const;
};

class AutoencoderTiny {
 public:
  explicit AutoencoderTiny(const AutoencoderTinyConfig& config);
  static AutoencoderTiny load(const std::filesystem::path& dir, DType weight_dtype = DType::F32);

  const AutoencoderTinyConfig& config() const { return config_; }
  void visit(WeightVisitor& v);

  // z [B, latent_channels, h, w] (already divided by scaling_factor) -> [B, out_channels, h·f, w·f] in ~[-1, 1].
  // options.slicing decodes one image at a time; tiling is not applied (TAESD's activations are small and
  // have no attention; diffusers' tiled TAESD decode blends differently from AutoencoderKL's).
  Tensor decode(Context& ctx, const TensorView& z, const VaeMemoryOptions& options = {}) const;
  // x [B, in_channels, H, W] in [-1, 1] -> raw latents [B, latent_channels, H/f, W/f] (diffusers'
  // AutoencoderTinyOutput.latents; no distribution to sample).
  Tensor encode(Context& ctx, const TensorView& x, const VaeMemoryOptions& options = {}) const;

 private:
  AutoencoderTinyConfig config_;
  EncoderTiny encoder;
  DecoderTiny decoder;
};

}  // namespace kakusan
