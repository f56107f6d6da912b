#include "models/resnet.h"

namespace kakusan {

ResnetBlock2D::ResnetBlock2D(int64_t in, int64_t out, int64_t temb, int groups, float eps)
    : in_channels(in), out_channels(out), temb_channels(temb),
      norm1(groups, in, eps), conv1(in, out, 3, 1, 1), time_emb_proj(temb, out),
      norm2(groups, out, eps), conv2(out, out, 3, 1, 1), conv_shortcut(in, out, 1) {}

void ResnetBlock2D::visit(WeightVisitor& v) {
  v.child("norm1", norm1);
  v.child("conv1", conv1);
  if (temb_channels > 0) v.child("time_emb_proj", time_emb_proj);
  v.child("norm2", norm2);
  v.child("conv2", conv2);
  if (has_shortcut()) v.child("conv_shortcut", conv_shortcut);
}

void ResnetBlock2D::forward(Context& ctx, const TensorView& x, const TensorView& temb_act,
                            const TensorView& y) const {
  KK_ASSERT(x.rank() == 4 && x.dim(1) == in_channels && y.dim(1) == out_channels);
  const int64_t batch = x.dim(0), pixels = x.dim(2) * x.dim(3);
  if (batch > 1 && pixels >= kOneSamplePixels) {
    for (int64_t b = 0; b < batch; ++b)
      forward(ctx, x.slice0(b, b + 1), temb_channels > 0 ? temb_act.slice0(b, b + 1) : temb_act, y.slice0(b, b + 1));
    return;
  }
  Backend& be = ctx.backend;
  ArenaScope scope(ctx.arena);

  TensorView h = ctx.arena.alloc(x.shape);
  norm1.forward(be, x, h, Activation::SiLU);
  TensorView h2 = ctx.arena.alloc(y.shape);
  if (temb_channels > 0) {
    KK_ASSERT(temb_act.rank() == 2 && temb_act.dim(0) == batch && temb_act.dim(1) == temb_channels);
    TensorView temb = ctx.arena.alloc({batch, out_channels});
    time_emb_proj.forward(be, temb_act, temb);
    if (batch == 1) {
      // The time embedding is a per-channel constant added after conv1: fold it into conv1's bias, saving a
      // broadcast pass over the activation.
      be.add(temb, conv1.bias.view().as_strided(temb.shape, {0, 1}), temb);
      be.conv2d(h, conv1.weight, temb[0], conv1.params, h2);
    } else {
      // Small images: one batched GEMM reads the (large) kernel once instead of once per sample; the
      // embedding is then added through a broadcast view (zero strides over H and W).
      conv1.forward(be, h, h2);
      const TensorView broadcast = temb.as_strided(h2.shape, {out_channels, 1, 0, 0});
      be.add(h2, broadcast, h2);
    }
  } else {
    conv1.forward(be, h, h2);
  }
  norm2.forward(be, h2, h2, Activation::SiLU);
  conv2.forward(be, h2, y);
  if (has_shortcut()) {
    // h is dead after conv1; when it is big enough (in >= out channels, e.g. every UNet up block) the
    // shortcut goes there instead of a fresh buffer.
    const TensorView shortcut =
        h.numel() >= y.numel() ? h.as_strided(y.shape, contiguous_strides(y.shape)) : ctx.arena.alloc(y.shape);
    conv_shortcut.forward(be, x, shortcut);
    be.add(shortcut, y, y);
  } else {
    be.add(x, y, y);
  }
}

Downsample2D::Downsample2D(int64_t channels, int padding) : conv(channels, channels, 3, 2, padding) {
  if (padding == 0) conv.params = Conv2dParams{2, 0, 1, 0, 1};
}

void Downsample2D::forward(Context& ctx, const TensorView& x, const TensorView& y) const {
  conv.forward(ctx.backend, x, y);
}

void Upsample2D::forward(Context& ctx, const TensorView& x, const TensorView& y) const {
  ArenaScope scope(ctx.arena);
  TensorView up = ctx.arena.alloc({x.dim(0), x.dim(1), y.dim(2), y.dim(3)});
  ctx.backend.resize_nearest(x, up);
  conv.forward(ctx.backend, up, y);
}

}  // namespace kakusan
