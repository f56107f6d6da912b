// The UNet's down, mid and up blocks (diffusers' models/unets/unet_2d_blocks.py). A "CrossAttn" block is
// the plain block plus one Transformer2DModel after each resnet, so each pair is one struct whose
// `attentions` list is empty for DownBlock2D / UpBlock2D.
#pragma once

#include <vector>

#include "models/resnet.h"
#include "models/transformer_2d.h"

namespace kakusan {

// What every block of one UNet shares.
struct UNetBlockOptions {
  int64_t temb_channels = 0;
  int groups = 32;
  float eps = 1e-5f;
  int64_t cross_attention_dim = 0;
  bool use_linear_projection = false;
};

// CrossAttnDownBlock2D (with_attention) or DownBlock2D.
struct UNetDownBlock {
  std::vector<Transformer2DModel> attentions;
  std::vector<ResnetBlock2D> resnets;
  std::vector<Downsample2D> downsamplers;

  UNetDownBlock() = default;
  UNetDownBlock(int64_t in, int64_t out, int num_layers, bool with_attention, int heads, int transformer_layers,
                bool add_downsample, int downsample_padding, const UNetBlockOptions& o);

  void visit(WeightVisitor& v);
  // The number of outputs kept for the up path (one per resnet, plus the downsampler's).
  size_t num_outputs() const { return resnets.size() + downsamplers.size(); }
  // outputs[i] receive every layer's output (the skip connections, shapes from output_shapes()).
  void forward(Context& ctx, const TensorView& x, const TensorView& temb_act, const TensorView& context,
               const std::vector<TensorView>& outputs) const;
  std::vector<Shape> output_shapes(const Shape& x) const;
};

// UNetMidBlock2DCrossAttn: resnet, then (attention, resnet) pairs.
struct UNetMidBlock {
  std::vector<Transformer2DModel> attentions;
  std::vector<ResnetBlock2D> resnets;

  UNetMidBlock() = default;
  UNetMidBlock(int64_t channels, int heads, int transformer_layers, const UNetBlockOptions& o);

  void visit(WeightVisitor& v);
  void forward(Context& ctx, const TensorView& x, const TensorView& temb_act, const TensorView& context,
               const TensorView& y) const;
};

// CrossAttnUpBlock2D (with_attention) or UpBlock2D. Each resnet takes cat([h, skip]) on channels, skips
// consumed from the last one backwards.
struct UNetUpBlock {
  std::vector<Transformer2DModel> attentions;
  std::vector<ResnetBlock2D> resnets;
  std::vector<Upsample2D> upsamplers;

  UNetUpBlock() = default;
  // prev_out: channels coming from below; skip_in: channels of the first down-path skip this block takes
  // last (diffusers' in_channels).
  UNetUpBlock(int64_t skip_in, int64_t out, int64_t prev_out, int num_layers, bool with_attention, int heads,
              int transformer_layers, bool add_upsample, const UNetBlockOptions& o);

  void visit(WeightVisitor& v);
  size_t num_skips() const { return resnets.size(); }
  // `next_skip`: the spatial size the upsampler must produce (diffusers' upsample_size: the size of the skip
  // the next block takes first), used only if this block upsamples.
  Shape output_shape(const Shape& x, const Shape& next_skip) const;
  // skips[j] is the skip for resnet j (already in consumption order).
  void forward(Context& ctx, const TensorView& x, const std::vector<TensorView>& skips, const TensorView& temb_act,
               const TensorView& context, const TensorView& y) const;
};

}  // namespace kakusan
