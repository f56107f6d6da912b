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

// The activation shapes after conv_in and after each block of the chain (the mid block keeps its shape).
template <typename Block>
std::vector<Shape> chain_shapes(const Conv2d& conv_in, const std::vector<Block>& blocks, const Shape& x) {
  std::vector<Shape> shapes{conv_in.out_shape(x)};
  for (const Block& block : blocks) shapes.push_back(block.output_shape(shapes.back()));
  return shapes;
}

// Runs the blocks in turn from h, each into the next ping-pong buffer (shapes[i + 1] is block i's output);
// returns the last output.
template <typename Block>
TensorView run_chain(Context& ctx, const std::vector<Block>& blocks, const std::vector<Shape>& shapes,
                     PingPong& buffers, TensorView h) {
  for (size_t i = 0; i < blocks.size(); ++i) {
    TensorView next = buffers.next(shapes[i + 1]);
    blocks[i].forward(ctx, h, next);
    h = next;
  }
  return h;
}
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
  return conv_out.out_shape(chain_shapes(conv_in, down_blocks, x).back());
}

void VaeEncoder::forward(Context& ctx, const TensorView& x, const TensorView& y) const {
  Backend& be = ctx.backend;
  ArenaScope scope(ctx.arena);
  const std::vector<Shape> shapes = chain_shapes(conv_in, down_blocks, x.shape);
  PingPong buffers(ctx.arena, shapes);
  TensorView h = buffers.next(shapes[0]);
  conv_in.forward(be, x, h);
  h = run_chain(ctx, down_blocks, shapes, buffers, h);
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
  return conv_out.out_shape(chain_shapes(conv_in, up_blocks, z).back());
}

void VaeDecoder::forward(Context& ctx, const TensorView& z, const TensorView& y) const {
  Backend& be = ctx.backend;
  ArenaScope scope(ctx.arena);
  const std::vector<Shape> shapes = chain_shapes(conv_in, up_blocks, z.shape);
  PingPong buffers(ctx.arena, shapes);
  TensorView h = buffers.next(shapes[0]);
  conv_in.forward(be, z, h);
  TensorView mid = buffers.next(h.shape);
  mid_block.forward(ctx, h, mid);
  h = run_chain(ctx, up_blocks, shapes, buffers, mid);
  conv_norm_out.forward(be, h, h, Activation::SiLU);
  conv_out.forward(be, h, y);
}

}  // namespace kakusan
