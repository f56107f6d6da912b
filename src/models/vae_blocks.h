// The VAE's blocks (diffusers' unet_2d_blocks.py: DownEncoderBlock2D, UpDecoderBlock2D, UNetMidBlock2D and
// the single-head spatial attention of its mid block). GroupNorms use eps 1e-6 throughout, as diffusers' VAE.
#pragma once

#include <vector>

#include "models/resnet.h"
#include "models/transformer_2d.h"

namespace kakusan {

inline constexpr float kVaeNormEps = 1e-6f;

// diffusers' Attention with group_norm and residual_connection (the old AttentionBlock): GroupNorm, one head
// over the H·W pixels, to_out.0, + input. Its parameters sit beside group_norm (to_q, not attn.to_q).
struct SpatialSelfAttention {
  GroupNorm group_norm;
  Attention attention;

  SpatialSelfAttention() = default;
  SpatialSelfAttention(int64_t channels, int groups)
      : group_norm(groups, channels, kVaeNormEps), attention(channels, channels, 1, channels, true) {}

  void visit(WeightVisitor& v) {
    v.child("group_norm", group_norm);
    attention.visit(v);
  }
  // x [B, C, H, W] -> y (distinct from x).
  void forward(Context& ctx, const TensorView& x, const TensorView& y) const;
};

// UNetMidBlock2D without time embedding: resnet, attention, resnet.
struct VaeMidBlock {
  std::vector<SpatialSelfAttention> attentions;
  std::vector<ResnetBlock2D> resnets;

  VaeMidBlock() = default;
  VaeMidBlock(int64_t channels, int groups, bool add_attention);

  void visit(WeightVisitor& v) {
    v.children("attentions", attentions);
    v.children("resnets", resnets);
  }
  void forward(Context& ctx, const TensorView& x, const TensorView& y) const;
};

// DownEncoderBlock2D: resnets, then (except in the last block) a right/bottom-padded stride-2 conv.
struct DownEncoderBlock2D {
  std::vector<ResnetBlock2D> resnets;
  std::vector<Downsample2D> downsamplers;

  DownEncoderBlock2D() = default;
  DownEncoderBlock2D(int64_t in, int64_t out, int num_layers, int groups, bool add_downsample);

  void visit(WeightVisitor& v) {
    v.children("resnets", resnets);
    v.children("downsamplers", downsamplers);
  }
  Shape output_shape(const Shape& x) const;
  void forward(Context& ctx, const TensorView& x, const TensorView& y) const;
};

// UpDecoderBlock2D: resnets, then (except in the last block) nearest x2 + conv.
struct UpDecoderBlock2D {
  std::vector<ResnetBlock2D> resnets;
  std::vector<Upsample2D> upsamplers;

  UpDecoderBlock2D() = default;
  UpDecoderBlock2D(int64_t in, int64_t out, int num_layers, int groups, bool add_upsample);

  void visit(WeightVisitor& v) {
    v.children("resnets", resnets);
    v.children("upsamplers", upsamplers);
  }
  Shape output_shape(const Shape& x) const;
  void forward(Context& ctx, const TensorView& x, const TensorView& y) const;
};

// Runs resnets one after another, ping-ponging between two arena buffers; the last writes into `last_out`.
void run_resnet_chain(Context& ctx, const std::vector<ResnetBlock2D>& resnets, const TensorView& x,
                      const TensorView& last_out);

}  // namespace kakusan
