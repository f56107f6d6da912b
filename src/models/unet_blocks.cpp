#include "models/unet_blocks.h"

namespace kakusan {

namespace {
Shape with_channels(const Shape& x, int64_t channels) { return {x[0], channels, x[2], x[3]}; }
}  // namespace

UNetDownBlock::UNetDownBlock(int64_t in, int64_t out, int num_layers, bool with_attention, int heads,
                             int transformer_layers, bool add_downsample, int downsample_padding,
                             const UNetBlockOptions& o) {
  for (int i = 0; i < num_layers; ++i) {
    resnets.emplace_back(i == 0 ? in : out, out, o.temb_channels, o.groups, o.eps);
    if (with_attention)
      attentions.emplace_back(out, heads, o.cross_attention_dim, transformer_layers, o.groups, o.use_linear_projection);
  }
  if (add_downsample) downsamplers.emplace_back(out, downsample_padding);
}

void UNetDownBlock::visit(WeightVisitor& v) {
  v.children("attentions", attentions);
  v.children("resnets", resnets);
  v.children("downsamplers", downsamplers);
}

std::vector<Shape> UNetDownBlock::output_shapes(const Shape& x) const {
  std::vector<Shape> shapes;
  Shape h = x;
  for (const ResnetBlock2D& r : resnets) shapes.push_back(h = with_channels(h, r.out_channels));
  for (const Downsample2D& d : downsamplers) shapes.push_back(h = d.out_shape(h));
  return shapes;
}

void UNetDownBlock::forward(Context& ctx, const TensorView& x, const TensorView& temb_act, const TensorView& context,
                            const std::vector<TensorView>& outputs) const {
  KK_ASSERT(outputs.size() == num_outputs());
  TensorView h = x;
  for (size_t i = 0; i < resnets.size(); ++i) {
    if (attentions.empty()) {
      resnets[i].forward(ctx, h, temb_act, outputs[i]);
    } else {
      ArenaScope scope(ctx.arena);
      TensorView r = ctx.arena.alloc(outputs[i].shape);
      resnets[i].forward(ctx, h, temb_act, r);
      attentions[i].forward(ctx, r, context, outputs[i]);
    }
    h = outputs[i];
  }
  if (!downsamplers.empty()) downsamplers[0].forward(ctx, h, outputs.back());
}

UNetMidBlock::UNetMidBlock(int64_t channels, int heads, int transformer_layers, const UNetBlockOptions& o) {
  resnets.emplace_back(channels, channels, o.temb_channels, o.groups, o.eps);
  attentions.emplace_back(channels, heads, o.cross_attention_dim, transformer_layers, o.groups,
                          o.use_linear_projection);
  resnets.emplace_back(channels, channels, o.temb_channels, o.groups, o.eps);
}

void UNetMidBlock::visit(WeightVisitor& v) {
  v.children("attentions", attentions);
  v.children("resnets", resnets);
}

void UNetMidBlock::forward(Context& ctx, const TensorView& x, const TensorView& temb_act, const TensorView& context,
                           const TensorView& y) const {
  ArenaScope scope(ctx.arena);
  TensorView a = ctx.arena.alloc(x.shape);
  TensorView b = ctx.arena.alloc(x.shape);
  resnets[0].forward(ctx, x, temb_act, a);
  for (size_t i = 0; i < attentions.size(); ++i) {
    attentions[i].forward(ctx, a, context, b);
    resnets[i + 1].forward(ctx, b, temb_act, i + 1 == attentions.size() ? y : a);
  }
}

UNetUpBlock::UNetUpBlock(int64_t skip_in, int64_t out, int64_t prev_out, int num_layers, bool with_attention,
                         int heads, int transformer_layers, bool add_upsample, const UNetBlockOptions& o) {
  for (int i = 0; i < num_layers; ++i) {
    const int64_t skip_channels = i == num_layers - 1 ? skip_in : out;
    const int64_t h_channels = i == 0 ? prev_out : out;
    resnets.emplace_back(h_channels + skip_channels, out, o.temb_channels, o.groups, o.eps);
    if (with_attention)
      attentions.emplace_back(out, heads, o.cross_attention_dim, transformer_layers, o.groups, o.use_linear_projection);
  }
  if (add_upsample) upsamplers.emplace_back(out);
}

void UNetUpBlock::visit(WeightVisitor& v) {
  v.children("attentions", attentions);
  v.children("resnets", resnets);
  v.children("upsamplers", upsamplers);
}

Shape UNetUpBlock::output_shape(const Shape& x, const Shape& next_skip) const {
  const int64_t channels = resnets.back().out_channels;
  return upsamplers.empty() ? with_channels(x, channels) : Shape{x[0], channels, next_skip[2], next_skip[3]};
}

void UNetUpBlock::forward(Context& ctx, const TensorView& x, const std::vector<TensorView>& skips,
                          const TensorView& temb_act, const TensorView& context, const TensorView& y) const {
  KK_ASSERT(skips.size() == resnets.size());
  Backend& be = ctx.backend;
  ArenaScope scope(ctx.arena);
  const Shape out_shape = with_channels(x.shape, resnets[0].out_channels);
  // Ping-pong between two buffers; the last layer writes straight into y when nothing follows it.
  TensorView buffers[2] = {ctx.arena.alloc(out_shape), ctx.arena.alloc(out_shape)};
  int next = 0;
  auto target = [&](bool last) { return last && upsamplers.empty() ? y : buffers[next++ % 2]; };
  TensorView h = x;
  for (size_t i = 0; i < resnets.size(); ++i) {
    const bool last = i + 1 == resnets.size();
    const TensorView r = attentions.empty() ? target(last) : buffers[next++ % 2];
    const int64_t hc = h.dim(1), sc = skips[i].dim(1), batch = h.dim(0);
    KK_CHECK(skips[i].dim(2) == h.dim(2) && skips[i].dim(3) == h.dim(3), "UNet: skip connection of size ",
             skips[i].shape.str(), " does not match the upsampled ", h.shape.str());
    // The concatenation [h, skip] is the block's largest tensor and lives only through the resnet; where the
    // resnet runs one sample at a time anyway, so does the concatenation.
    const bool one_sample = batch > 1 && h.dim(2) * h.dim(3) >= ResnetBlock2D::kOneSamplePixels;
    for (int64_t b = 0; b < (one_sample ? batch : 1); ++b) {
      ArenaScope cat_scope(ctx.arena);
      const int64_t b0 = one_sample ? b : 0, b1 = one_sample ? b + 1 : batch;
      TensorView cat = ctx.arena.alloc({b1 - b0, hc + sc, h.dim(2), h.dim(3)});
      be.copy(h.slice0(b0, b1), cat.narrow(1, 0, hc));
      be.copy(skips[i].slice0(b0, b1), cat.narrow(1, hc, sc));
      resnets[i].forward(ctx, cat, temb_act.slice0(b0, b1), r.slice0(b0, b1));
    }
    if (attentions.empty()) {
      h = r;
    } else {
      const TensorView out = target(last);
      attentions[i].forward(ctx, r, context, out);
      h = out;
    }
  }
  if (!upsamplers.empty()) upsamplers[0].forward(ctx, h, y);
}

}  // namespace kakusan
