#include "models/transformer_2d.h"

#include <algorithm>
#include <cmath>

namespace kakusan {

TensorView nchw_as_tokens(const TensorView& x) {
  KK_ASSERT(x.rank() == 4 && x.is_contiguous());
  const int64_t b = x.dim(0), c = x.dim(1), hw = x.dim(2) * x.dim(3);
  return x.as_strided({b, hw, c}, {c * hw, 1, hw});
}

Attention::Attention(int64_t query_dim, int64_t context_dim, int64_t heads, int64_t dim_head, bool bias)
    : query_dim(query_dim), context_dim(context_dim), heads(heads), dim_head(dim_head),
      to_q(query_dim, heads * dim_head, bias), to_k(context_dim, heads * dim_head, bias),
      to_v(context_dim, heads * dim_head, bias), to_out(heads * dim_head, query_dim) {}

void Attention::visit(WeightVisitor& v) {
  v.child("to_q", to_q);
  v.child("to_k", to_k);
  v.child("to_v", to_v);
  v.child("to_out.0", to_out);
}

void Attention::forward(Context& ctx, const TensorView& x, const TensorView& context, const TensorView& y) const {
  Backend& be = ctx.backend;
  ArenaScope scope(ctx.arena);
  const int64_t batch = x.dim(0), tq = x.dim(1), tk = context.dim(1);
  TensorView q = ctx.arena.alloc({batch, tq, inner_dim()});
  TensorView k = ctx.arena.alloc({batch, tk, inner_dim()});
  TensorView v = ctx.arena.alloc({batch, tk, inner_dim()});
  to_q.forward(be, x, q);
  to_k.forward(be, context, k);
  to_v.forward(be, context, v);
  AttentionParams params = ctx.attention;
  params.heads = int(heads);
  params.scale = float(1.0 / std::sqrt(double(dim_head)));
  params.causal = false;
  TensorView o = ctx.arena.alloc({batch, tq, inner_dim()});
  be.attention(q, k, v, params, o);
  to_out.forward(be, o, y);
}

void FeedForward::forward(Context& ctx, const TensorView& x, const TensorView& y) const {
  // Rows are independent, so they go through in chunks: the projection is 8x wider than x (84 MB at 64x64
  // latents with CFG), and chunks of a few thousand rows keep it small with the GEMMs as efficient.
  constexpr int64_t kChunkFloats = int64_t(1) << 21;  // of the projection: 8 MB
  const int64_t rows = x.numel() / dim;
  const int64_t chunk = std::min(rows, std::max<int64_t>(256, kChunkFloats / (2 * inner)));
  ArenaScope scope(ctx.arena);
  const TensorView projected = ctx.arena.alloc({chunk, 2 * inner});
  const TensorView gated = ctx.arena.alloc({chunk, inner});
  const TensorView x_rows = x.reshape({rows, dim}), y_rows = y.reshape({rows, dim});
  for (int64_t begin = 0; begin < rows; begin += chunk) {
    const int64_t end = std::min(rows, begin + chunk);
    const TensorView p = projected.slice0(0, end - begin), g = gated.slice0(0, end - begin);
    proj.forward(ctx.backend, x_rows.slice0(begin, end), p);
    ctx.backend.geglu(p, g);
    out.forward(ctx.backend, g, y_rows.slice0(begin, end));
  }
}

BasicTransformerBlock::BasicTransformerBlock(int64_t dim, int64_t heads, int64_t dim_head, int64_t cross_attention_dim)
    : norm1(dim, 1e-5f), norm2(dim, 1e-5f), norm3(dim, 1e-5f),
      attn1(dim, dim, heads, dim_head, false), attn2(dim, cross_attention_dim, heads, dim_head, false), ff(dim) {}

void BasicTransformerBlock::visit(WeightVisitor& v) {
  v.child("norm1", norm1);
  v.child("attn1", attn1);
  v.child("norm2", norm2);
  v.child("attn2", attn2);
  v.child("norm3", norm3);
  v.child("ff", ff);
}

void BasicTransformerBlock::forward(Context& ctx, const TensorView& x, const TensorView& context) const {
  Backend& be = ctx.backend;
  ArenaScope scope(ctx.arena);
  TensorView normed = ctx.arena.alloc(x.shape);
  TensorView delta = ctx.arena.alloc(x.shape);
  norm1.forward(be, x, normed);
  attn1.forward(ctx, normed, normed, delta);
  be.add(delta, x, x);
  norm2.forward(be, x, normed);
  attn2.forward(ctx, normed, context, delta);
  be.add(delta, x, x);
  norm3.forward(be, x, normed);
  ff.forward(ctx, normed, delta);
  be.add(delta, x, x);
}

Transformer2DModel::Transformer2DModel(int64_t channels, int64_t heads, int64_t cross_attention_dim, int num_layers,
                                       int groups, bool use_linear_projection)
    : channels(channels), norm(groups, channels, 1e-6f), proj_in(channels, channels, !use_linear_projection),
      proj_out(channels, channels, !use_linear_projection) {
  for (int i = 0; i < num_layers; ++i)
    transformer_blocks.emplace_back(channels, heads, channels / heads, cross_attention_dim);
}

void Transformer2DModel::visit(WeightVisitor& v) {
  v.child("norm", norm);
  v.child("proj_in", proj_in);
  v.children("transformer_blocks", transformer_blocks);
  v.child("proj_out", proj_out);
}

void Transformer2DModel::forward(Context& ctx, const TensorView& x, const TensorView& context,
                                 const TensorView& y) const {
  const int64_t batch = x.dim(0), tokens = x.dim(2) * x.dim(3);
  // Samples are independent here, and at high resolution this block's eight token-by-channel tensors are the
  // largest part of the UNet's arena (84 MB at 64x64 latents with CFG): one sample at a time halves them,
  // and the GEMMs still have thousands of rows.
  constexpr int64_t kOneSampleTokens = 2048;
  if (batch > 1 && tokens >= kOneSampleTokens) {
    for (int64_t b = 0; b < batch; ++b)
      forward(ctx, x.slice0(b, b + 1), context.slice0(b, b + 1), y.slice0(b, b + 1));
    return;
  }
  Backend& be = ctx.backend;
  ArenaScope scope(ctx.arena);
  TensorView token_major = ctx.arena.alloc({batch, tokens, channels});
  {
    ArenaScope norm_scope(ctx.arena);  // the normalised NCHW copy is needed only until it is transposed
    TensorView normed = ctx.arena.alloc(x.shape);
    norm.forward(be, x, normed);
    be.copy(nchw_as_tokens(normed), token_major);
  }
  TensorView hidden = ctx.arena.alloc({batch, tokens, channels});
  proj_in.forward(be, token_major, hidden);
  for (const BasicTransformerBlock& block : transformer_blocks) block.forward(ctx, hidden, context);
  proj_out.forward(be, hidden, token_major);
  be.copy(token_major, nchw_as_tokens(y));
  be.add(y, x, y);
}

}  // namespace kakusan
