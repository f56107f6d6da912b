// Transformer2DModel as Stable Diffusion uses it (diffusers' models/transformers/transformer_2d.py,
// attention.py, attention_processor.py): GroupNorm -> proj_in -> BasicTransformerBlocks -> proj_out ->
// + input, with diffusers' parameter names.
#pragma once

#include <vector>

#include "nn/context.h"
#include "nn/layers.h"

namespace kakusan {

// diffusers' Attention with the plain AttnProcessor: to_q/to_k/to_v projections, multi-head
// softmax(q·kᵀ / sqrt(dim_head))·v through the backend (strategy from ctx.attention), then to_out.0.
struct Attention {
  int64_t query_dim = 0, context_dim = 0, heads = 1, dim_head = 0;
  Linear to_q, to_k, to_v, to_out;  // to_out is "to_out.0" (diffusers' to_out is [Linear, Dropout])

  Attention() = default;
  // context_dim == query_dim for self-attention. `bias`: whether q/k/v have biases (to_out always has).
  Attention(int64_t query_dim, int64_t context_dim, int64_t heads, int64_t dim_head, bool bias);

  int64_t inner_dim() const { return heads * dim_head; }
  void visit(WeightVisitor& v);
  // x [B, Tq, query_dim], context [B, Tk, context_dim] (x for self-attention) -> y [B, Tq, query_dim].
  void forward(Context& ctx, const TensorView& x, const TensorView& context, const TensorView& y) const;
};

// FeedForward with GEGLU: net.0.proj (dim -> 2·inner), x·gelu(gate), net.2 (inner -> dim).
struct FeedForward {
  int64_t dim = 0, inner = 0;
  Linear proj, out;

  FeedForward() = default;
  FeedForward(int64_t dim, int64_t mult = 4) : dim(dim), inner(dim * mult), proj(dim, 2 * dim * mult), out(dim * mult, dim) {}

  void visit(WeightVisitor& v) {
    v.child("net.0.proj", proj);
    v.child("net.2", out);
  }
  void forward(Context& ctx, const TensorView& x, const TensorView& y) const;
};

// LayerNorm -> self-attention, LayerNorm -> cross-attention, LayerNorm -> GEGLU feed-forward, each residual.
struct BasicTransformerBlock {
  LayerNorm norm1, norm2, norm3;
  Attention attn1, attn2;
  FeedForward ff;

  BasicTransformerBlock() = default;
  BasicTransformerBlock(int64_t dim, int64_t heads, int64_t dim_head, int64_t cross_attention_dim);

  void visit(WeightVisitor& v);
  // Updates x [B, T, dim] in place; context [B, Tc, cross_attention_dim].
  void forward(Context& ctx, const TensorView& x, const TensorView& context) const;
};

// A 1x1 projection on tokens: a Linear ([out, in], SD 2.x use_linear_projection) or a 1x1 Conv2d
// ([out, in, 1, 1], SD 1.x). Both are the same GEMM over pixels, so both run as one linear on the
// [B, H·W, C] token layout; only the stored weight shape differs.
struct PointwiseProjection {
  int64_t in = 0, out = 0;
  bool as_conv = false;
  Tensor weight, bias;

  PointwiseProjection() = default;
  PointwiseProjection(int64_t in, int64_t out, bool as_conv) : in(in), out(out), as_conv(as_conv) {}

  void visit(WeightVisitor& v) {
    if (as_conv)
      v("weight", weight, {out, in, 1, 1});
    else
      v("weight", weight, {out, in});
    v("bias", bias, {out});
  }
  void forward(Backend& be, const TensorView& x, const TensorView& y) const {
    be.linear(x, weight.view().reshape({out, in}), bias, y);
  }
};

struct Transformer2DModel {
  int64_t channels = 0;
  GroupNorm norm;
  PointwiseProjection proj_in, proj_out;
  std::vector<BasicTransformerBlock> transformer_blocks;

  Transformer2DModel() = default;
  // heads: the number of heads (dim_head = channels / heads); groups: the UNet's norm_num_groups.
  Transformer2DModel(int64_t channels, int64_t heads, int64_t cross_attention_dim, int num_layers, int groups,
                     bool use_linear_projection);

  void visit(WeightVisitor& v);
  // x [B, C, H, W] -> y [B, C, H, W] (distinct from x); context [B, T, cross_attention_dim].
  void forward(Context& ctx, const TensorView& x, const TensorView& context, const TensorView& y) const;
};

// NCHW [B, C, H, W] seen as tokens [B, H·W, C] (a strided view, for backend copies in and out of the token
// layout).
TensorView nchw_as_tokens(const TensorView& x);

}  // namespace kakusan
