#include "models/vae_blocks.h"

namespace kakusan {

void SpatialSelfAttention::forward(Context& ctx, const TensorView& x, const TensorView& y) const {
  Backend& be = ctx.backend;
  ArenaScope scope(ctx.arena);
  const int64_t batch = x.dim(0), channels = x.dim(1), tokens = x.dim(2) * x.dim(3);
  TensorView normed = ctx.arena.alloc(x.shape);
  group_norm.forward(be, x, normed);
  TensorView token_major = ctx.arena.alloc({batch, tokens, channels});
  be.copy(nchw_as_tokens(normed), token_major);
  TensorView attended = ctx.arena.alloc({batch, tokens, channels});
  attention.forward(ctx, token_major, token_major, attended);
  be.copy(attended, nchw_as_tokens(y));
  be.add(y, x, y);
}

VaeMidBlock::VaeMidBlock(int64_t channels, int groups, bool add_attention) {
  resnets.emplace_back(channels, channels, 0, groups, kVaeNormEps);
  if (add_attention) attentions.emplace_back(channels, groups);
  resnets.emplace_back(channels, channels, 0, groups, kVaeNormEps);
}

void VaeMidBlock::forward(Context& ctx, const TensorView& x, const TensorView& y) const {
  ArenaScope scope(ctx.arena);
  TensorView a = ctx.arena.alloc(x.shape);
  resnets[0].forward(ctx, x, {}, a);
  if (attentions.empty()) {
    resnets[1].forward(ctx, a, {}, y);
    return;
  }
  TensorView b = ctx.arena.alloc(x.shape);
  attentions[0].forward(ctx, a, b);
  resnets[1].forward(ctx, b, {}, y);
}

void run_resnet_chain(Context& ctx, const std::vector<ResnetBlock2D>& resnets, const TensorView& x,
                      const TensorView& last_out) {
  ArenaScope scope(ctx.arena);
  const Shape shape{x.dim(0), resnets.back().out_channels, x.dim(2), x.dim(3)};
  TensorView buffers[2];
  if (resnets.size() > 1) buffers[0] = ctx.arena.alloc(shape);
  if (resnets.size() > 2) buffers[1] = ctx.arena.alloc(shape);
  TensorView h = x;
  for (size_t i = 0; i < resnets.size(); ++i) {
    const TensorView out = i + 1 == resnets.size() ? last_out : buffers[i % 2];
    resnets[i].forward(ctx, h, {}, out);
    h = out;
  }
}

namespace {
// The shared shape of DownEncoderBlock2D and UpDecoderBlock2D: resnets, then the one resampler (a
// Downsample2D or an Upsample2D) when the block has it.
template <typename Resampler>
Shape resnets_then_resample_shape(const std::vector<ResnetBlock2D>& resnets, const std::vector<Resampler>& resample,
                                  const Shape& x) {
  const Shape h{x[0], resnets.back().out_channels, x[2], x[3]};
  return resample.empty() ? h : resample[0].out_shape(h);
}

template <typename Resampler>
void run_resnets_then_resample(Context& ctx, const std::vector<ResnetBlock2D>& resnets,
                               const std::vector<Resampler>& resample, const TensorView& x, const TensorView& y) {
  if (resample.empty()) return run_resnet_chain(ctx, resnets, x, y);
  ArenaScope scope(ctx.arena);
  TensorView h = ctx.arena.alloc({x.dim(0), resnets.back().out_channels, x.dim(2), x.dim(3)});
  run_resnet_chain(ctx, resnets, x, h);
  resample[0].forward(ctx, h, y);
}
}  // namespace

DownEncoderBlock2D::DownEncoderBlock2D(int64_t in, int64_t out, int num_layers, int groups, bool add_downsample) {
  for (int i = 0; i < num_layers; ++i) resnets.emplace_back(i == 0 ? in : out, out, 0, groups, kVaeNormEps);
  if (add_downsample) downsamplers.emplace_back(out, 0);
}

Shape DownEncoderBlock2D::output_shape(const Shape& x) const {
  return resnets_then_resample_shape(resnets, downsamplers, x);
}

void DownEncoderBlock2D::forward(Context& ctx, const TensorView& x, const TensorView& y) const {
  run_resnets_then_resample(ctx, resnets, downsamplers, x, y);
}

UpDecoderBlock2D::UpDecoderBlock2D(int64_t in, int64_t out, int num_layers, int groups, bool add_upsample) {
  for (int i = 0; i < num_layers; ++i) resnets.emplace_back(i == 0 ? in : out, out, 0, groups, kVaeNormEps);
  if (add_upsample) upsamplers.emplace_back(out);
}

Shape UpDecoderBlock2D::output_shape(const Shape& x) const {
  return resnets_then_resample_shape(resnets, upsamplers, x);
}

void UpDecoderBlock2D::forward(Context& ctx, const TensorView& x, const TensorView& y) const {
  run_resnets_then_resample(ctx, resnets, upsamplers, x, y);
}

}  // namespace kakusan
