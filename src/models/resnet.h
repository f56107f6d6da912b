// The convolutional building blocks shared by the UNet and the VAE: ResnetBlock2D, Downsample2D, Upsample2D
// (diffusers' models/resnet.py, downsampling.py, upsampling.py), with diffusers' parameter names.
#pragma once

#include "nn/context.h"
#include "nn/layers.h"

namespace kakusan {

// GroupNorm+SiLU -> conv3x3 (+ time embedding) -> GroupNorm+SiLU -> conv3x3, plus the input (through a 1x1
// conv when the channel count changes).
struct ResnetBlock2D {
  int64_t in_channels = 0, out_channels = 0, temb_channels = 0;  // temb_channels 0: no time embedding (VAE)
  GroupNorm norm1;
  Conv2d conv1;
  Linear time_emb_proj;
  GroupNorm norm2;
  Conv2d conv2;
  Conv2d conv_shortcut;  // only when in_channels != out_channels

  // From this many pixels on, a batch goes through one sample at a time: the temporaries (the normalised
  // input, conv1's output) shrink by the batch size, and the time embedding folds into conv1's bias. Below
  // it, one batched GEMM reads the (large) kernels once, and the embedding is added afterwards.
  static constexpr int64_t kOneSamplePixels = 4096;

  ResnetBlock2D() = default;
  ResnetBlock2D(int64_t in, int64_t out, int64_t temb, int groups, float eps);

  bool has_shortcut() const { return in_channels != out_channels; }
  void visit(WeightVisitor& v);
  // x [B, in, H, W] -> y [B, out, H, W] (y distinct from x). `temb_act` is SiLU(time embedding) [B, temb]
  // (diffusers applies the SiLU inside every block; the UNet computes it once); empty for the VAE.
  void forward(Context& ctx, const TensorView& x, const TensorView& temb_act, const TensorView& y) const;
};

// Stride-2 3x3 convolution. padding 1 (UNet) pads symmetrically; padding 0 (VAE encoder) pads right/bottom
// by one first, as diffusers' Downsample2D does with F.pad(x, (0, 1, 0, 1)).
struct Downsample2D {
  Conv2d conv;

  Downsample2D() = default;
  Downsample2D(int64_t channels, int padding);

  void visit(WeightVisitor& v) { v.child("conv", conv); }
  Shape out_shape(const Shape& x) const { return conv.out_shape(x); }
  void forward(Context& ctx, const TensorView& x, const TensorView& y) const;
};

// Nearest-neighbour x2, then a 3x3 convolution. The output size is y's: when it is not exactly twice the input
// (a UNet on latents whose size is not a multiple of 2^downsamplings, where diffusers passes upsample_size),
// the nearest resize follows torch's F.interpolate(size=..., mode="nearest").
struct Upsample2D {
  Conv2d conv;

  Upsample2D() = default;
  explicit Upsample2D(int64_t channels) : conv(channels, channels, 3, 1, 1) {}

  void visit(WeightVisitor& v) { v.child("conv", conv); }
  Shape out_shape(const Shape& x) const { return {x[0], conv.out, 2 * x[2], 2 * x[3]}; }
  void forward(Context& ctx, const TensorView& x, const TensorView& y) const;
};

}  // namespace kakusan
