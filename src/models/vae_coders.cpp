#include "models/vae_coders.h"

#include <algorithm>

namespace kakusan {

namespace {
// Two arena buffers big enough for the largest of `shapes`; successive stages alternate between them so a
// chain of blocks holds two activations at a time, not all of them.
class PingPong {
 public:
  PingPong(Arena& arena, const std::vector<Shape>& shapes) {
    int64_t most = 0;
    for (const Shape& s : shapes) most = std::max(most, s.numel());
    for (TensorView& b : buffers_) b = arena.alloc({most});
  }
  TensorView next(const Shape& shape) { return buffers_[turn_++ % 2].narrow(0, 0, shape.numel()).reshape(shape); }

 private:
  TensorView buffers_[2];
  int turn_ = 0;
};
}  // namespace

VaeEncoder::VaeEncoder(const AutoencoderKLConfig& c)
    : conv_in(c.in_channels, c.block_out_channels[0], 3, 1, 1),
      mid_block(c.block_out_channels.back(), c.norm_num_groups, c.mid_block_add_attention),
      conv_norm_out(c.norm_num_groups, c.block_out_channels.back(), kVaeNormEps),
      conv_out(c.block_out_channels.back(), 2 * c.latent_channels, 3, 1, 1) {
  const size_t n = c.block_out_channels.size();
  int64_t out = c.block_out_channels[0];
  for (size_t i = 0; i < n; ++i) {
    const int64_t in = out;
    out = c.block_out_channels[i];
    down_blocks.emplace_back(in, out, c.layers_per_block, c.norm_num_groups, i + 1 < n);
  }
}

void VaeEncoder::visit(WeightVisitor& v) {
  v.child("conv_in", conv_in);
  v.children("down_blocks", down_blocks);
  v.child("mid_block", mid_block);
  v.child("conv_norm_out", conv_norm_out);
  v.child("conv_out", conv_out);
}

Shape VaeEncoder::output_shape(const Shape& x) const {
  Shape h = conv_in.out_shape(x);
  for (const DownEncoderBlock2D& block : down_blocks) h = block.output_shape(h);
  return conv_out.out_shape(h);
}

void VaeEncoder::forward(Context& ctx, const TensorView& x, const TensorView& y) const {
  Backend& be = ctx.backend;
  ArenaScope scope(ctx.arena);
  std::vector<Shape> shapes{conv_in.out_shape(x.shape)};
  for (const DownEncoderBlock2D& block : down_blocks) shapes.push_back(block.output_shape(shapes.back()));
  PingPong buffers(ctx.arena, shapes);
  TensorView h = buffers.next(shapes[0]);
  conv_in.forward(be, x, h);
  for (size_t i = 0; i < down_blocks.size(); ++i) {
    TensorView next = buffers.next(shapes[i + 1]);
    down_blocks[i].forward(ctx, h, next);
    h = next;
  }
  TensorView mid = buffers.next(h.shape);
  mid_block.forward(ctx, h, mid);
  conv_norm_out.forward(be, mid, mid, Activation::SiLU);
  conv_out.forward(be, mid, y);
}

VaeDecoder::VaeDecoder(const AutoencoderKLConfig& c)
    : conv_in(c.latent_channels, c.block_out_channels.back(), 3, 1, 1),
      mid_block(c.block_out_channels.back(), c.norm_num_groups, c.mid_block_add_attention),
      conv_norm_out(c.norm_num_groups, c.block_out_channels[0], kVaeNormEps),
      conv_out(c.block_out_channels[0], c.out_channels, 3, 1, 1) {
  const size_t n = c.block_out_channels.size();
  int64_t out = c.block_out_channels[n - 1];
  for (size_t i = 0; i < n; ++i) {
    const int64_t prev = out;
    out = c.block_out_channels[n - 1 - i];
    up_blocks.emplace_back(prev, out, c.layers_per_block + 1, c.norm_num_groups, i + 1 < n);
  }
}

void VaeDecoder::visit(WeightVisitor& v) {
  v.child("conv_in", conv_in);
  v.child("mid_block", mid_block);
  v.children("up_blocks", up_blocks);
  v.child("conv_norm_out", conv_norm_out);
  v.child("conv_out", conv_out);
}

Shape VaeDecoder::output_shape(const Shape& z) const {
  Shape h = conv_in.out_shape(z);
  for (const UpDecoderBlock2D& block : up_blocks) h = block.output_shape(h);
  return conv_out.out_shape(h);
}

void VaeDecoder::forward(Context& ctx, const TensorView& z, const TensorView& y) const {
  Backend& be = ctx.backend;
  ArenaScope scope(ctx.arena);
  std::vector<Shape> shapes{conv_in.out_shape(z.shape)};
  for (const UpDecoderBlock2D& block : up_blocks) shapes.push_back(block.output_shape(shapes.back()));
  PingPong buffers(ctx.arena, shapes);
  TensorView h = buffers.next(shapes[0]);
  conv_in.forward(be, z, h);
  TensorView mid = buffers.next(h.shape);
  mid_block.forward(ctx, h, mid);
  h = mid;
  for (size_t i = 0; i < up_blocks.size(); ++i) {
    TensorView next = buffers.next(shapes[i + 1]);
    up_blocks[i].forward(ctx, h, next);
    h = next;
  }
  conv_norm_out.forward(be, h, h, Activation::SiLU);
  conv_out.forward(be, h, y);
}

}  // namespace kakusan
