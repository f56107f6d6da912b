#include "models/autoencoder_tiny.h"

#include "models/model_folder_load.h"

namespace kakusan {

TinyBlock::TinyBlock(int64_t channels)
    : conv0(channels, channels, 3, 1, 1), conv1(channels, channels, 3, 1, 1), conv2(channels, channels, 3, 1, 1) {}

void TinyBlock::visit(WeightVisitor& v) {
  // diffusers' nn.Sequential(conv, act, conv, act, conv): the activations take indices 1 and 3.
  v.child("conv.0", conv0);
  v.child("conv.2", conv1);
  v.child("conv.4", conv2);
}

void TinyBlock::forward(Context& ctx, const TensorView& x, const TensorView& y) const {
  Backend& be = ctx.backend;
  ArenaScope scope(ctx.arena);
  const TensorView a = ctx.arena.alloc(x.shape, x.dtype), b = ctx.arena.alloc(x.shape, x.dtype);
  conv0.forward(be, x, a);
  be.activation(a, Activation::ReLU, a);
  conv1.forward(be, a, b);
  be.activation(b, Activation::ReLU, b);
  conv2.forward(be, b, a);
  be.add(a, x, y);  // the identity skip (in == out channels)
  be.activation(y, Activation::ReLU, y);
}

namespace {

std::vector<TinyBlock> make_blocks(int count, int64_t channels) {
  std::vector<TinyBlock> blocks;
  for (int i = 0; i < count; ++i) blocks.emplace_back(channels);
  return blocks;
}

// The blocks of a stage in place on h.
void run_blocks(Context& ctx, const std::vector<TinyBlock>& blocks, const TensorView& h) {
  for (const TinyBlock& block : blocks) block.forward(ctx, h, h);
}

}  // namespace

EncoderTiny::EncoderTiny(const AutoencoderTinyConfig& c) {
  const int64_t ch = c.encoder_block_out_channels[0];
  conv_in = Conv2d(c.in_channels, ch, 3, 1, 1);
  for (size_t i = 0; i < c.num_encoder_blocks.size(); ++i) {
    TinyStage stage;
    stage.has_conv = i > 0;
    if (stage.has_conv) stage.conv = Conv2d(ch, ch, 3, /*stride=*/2, /*padding=*/1, /*bias=*/false);
    stage.blocks = make_blocks(c.num_encoder_blocks[i], ch);
    stages.push_back(std::move(stage));
  }
  conv_out = Conv2d(ch, c.latent_channels, 3, 1, 1);
}

// diffusers' EncoderTiny.layers, one nn.Sequential: conv_in, blocks of stage 0, then per stage its conv and
// blocks, then conv_out; the weights are named by position in that list.
void EncoderTiny::visit(WeightVisitor& v) {
  int index = 0;
  auto next = [&](auto& module) { v.child("layers." + std::to_string(index++), module); };
  next(conv_in);
  for (TinyStage& stage : stages) {
    if (stage.has_conv) next(stage.conv);
    for (TinyBlock& block : stage.blocks) next(block);
  }
  next(conv_out);
}

Shape EncoderTiny::output_shape(const Shape& x) const {
  Shape s = conv_in.out_shape(x);
  for (const TinyStage& stage : stages)
    if (stage.has_conv) s = stage.conv.out_shape(s);
  return conv_out.out_shape(s);
}

void EncoderTiny::forward(Context& ctx, const TensorView& x, const TensorView& y) const {
  Backend& be = ctx.backend;
  ArenaScope scope(ctx.arena);
  const TensorView unit = ctx.arena.alloc(x.shape, x.dtype);
  be.activation(x, Activation::SignedToUnit, unit);  // x.add(1).div(2)
  TensorView h = ctx.arena.alloc(conv_in.out_shape(x.shape), x.dtype);
  conv_in.forward(be, unit, h);
  for (const TinyStage& stage : stages) {
    if (stage.has_conv) {
      const TensorView down = ctx.arena.alloc(stage.conv.out_shape(h.shape), h.dtype);
      stage.conv.forward(be, h, down);
      h = down;
    }
    run_blocks(ctx, stage.blocks, h);
  }
  conv_out.forward(be, h, y);
}

DecoderTiny::DecoderTiny(const AutoencoderTinyConfig& c) {
  const int64_t ch = c.decoder_block_out_channels[0];
  conv_in = Conv2d(c.latent_channels, ch, 3, 1, 1);
  for (size_t i = 0; i < c.num_decoder_blocks.size(); ++i) {
    const bool last = i + 1 == c.num_decoder_blocks.size();
    TinyStage stage;
    stage.blocks = make_blocks(c.num_decoder_blocks[i], ch);
    stage.conv = Conv2d(ch, last ? c.out_channels : ch, 3, 1, 1, /*bias=*/last);
    stages.push_back(std::move(stage));
  }
}

// diffusers' DecoderTiny.layers: conv_in, ReLU (index 1), then per stage its blocks, an nn.Upsample (all but
// the last stage) and its conv.
void DecoderTiny::visit(WeightVisitor& v) {
  v.child("layers.0", conv_in);
  int index = 2;
  for (size_t i = 0; i < stages.size(); ++i) {
    for (TinyBlock& block : stages[i].blocks) v.child("layers." + std::to_string(index++), block);
    if (i + 1 < stages.size()) ++index;  // the upsampling layer
    v.child("layers." + std::to_string(index++), stages[i].conv);
  }
}

Shape DecoderTiny::output_shape(const Shape& z) const {
  Shape s = conv_in.out_shape(z);
  for (size_t i = 0; i + 1 < stages.size(); ++i) s = {s[0], s[1], 2 * s[2], 2 * s[3]};
  return stages.back().conv.out_shape(s);
}

void DecoderTiny::forward(Context& ctx, const TensorView& z, const TensorView& y) const {
  Backend& be = ctx.backend;
  ArenaScope scope(ctx.arena);
  const TensorView clamped = ctx.arena.alloc(z.shape, z.dtype);
  be.activation(z, Activation::SoftClamp3, clamped);  // torch.tanh(x / 3) * 3
  TensorView h = ctx.arena.alloc(conv_in.out_shape(z.shape), z.dtype);
  conv_in.forward(be, clamped, h);
  be.activation(h, Activation::ReLU, h);
  for (size_t i = 0; i < stages.size(); ++i) {
    run_blocks(ctx, stages[i].blocks, h);
    if (i + 1 == stages.size()) break;
    const TensorView up = ctx.arena.alloc({h.dim(0), h.dim(1), 2 * h.dim(2), 2 * h.dim(3)}, h.dtype);
    be.resize_nearest(h, up);  // nn.Upsample(scale_factor=2, mode="nearest")
    h = ctx.arena.alloc(stages[i].conv.out_shape(up.shape), up.dtype);
    stages[i].conv.forward(be, up, h);
  }
  stages.back().conv.forward(be, h, y);
  be.activation(y, Activation::UnitToSigned, y);  // x.mul(2).sub(1)
}

AutoencoderTiny::AutoencoderTiny(const AutoencoderTinyConfig& config)
    : config_(config), encoder(config), decoder(config) {}

AutoencoderTiny AutoencoderTiny::load(const std::filesystem::path& dir, DType weight_dtype) {
  return load_model_folder<AutoencoderTiny, AutoencoderTinyConfig>(dir, weight_dtype, "", "diffusers",
                                                                   "AutoencoderTiny");
}

void AutoencoderTiny::visit(WeightVisitor& v) {
  v.child("encoder", encoder);
  v.child("decoder", decoder);
}

namespace {

// Runs `model` on each slice of the batch (all at once unless slicing), into an output on the backend.
template <typename Model>
Tensor run_batched(Context& ctx, const Model& model, const TensorView& x, bool slicing) {
  Tensor out = ctx.backend.empty(model.output_shape(x.shape), x.dtype);
  const int64_t step = slicing ? 1 : x.dim(0);
  for (int64_t b = 0; b < x.dim(0); b += step) model.forward(ctx, x.slice0(b, b + step), out.view().slice0(b, b + step));
  return out;
}

}  // namespace

Tensor AutoencoderTiny::decode(Context& ctx, const TensorView& z, const VaeMemoryOptions& options) const {
  check_compute_dtype(ctx, "AutoencoderTiny decode");
  KK_CHECK(z.rank() == 4 && z.dim(1) == config_.latent_channels && z.dtype == ctx.compute_dtype && z.dim(0) > 0,
           "AutoencoderTiny decode: latents ", z.shape.str(), " must be ", dtype_name(ctx.compute_dtype), " [B, ",
           config_.latent_channels, ", h, w]");
  return run_batched(ctx, decoder, z, options.slicing);
}

Tensor AutoencoderTiny::encode(Context& ctx, const TensorView& x, const VaeMemoryOptions& options) const {
  check_compute_dtype(ctx, "AutoencoderTiny encode");
  const int64_t f = config_.downscale_factor();
  KK_CHECK(x.rank() == 4 && x.dim(1) == config_.in_channels && x.dtype == ctx.compute_dtype && x.dim(0) > 0 &&
               x.dim(2) % f == 0 && x.dim(3) % f == 0,
           "AutoencoderTiny encode: image ", x.shape.str(), " must be ", dtype_name(ctx.compute_dtype), " [B, ",
           config_.in_channels, ", H, W] with H and W multiples of ", f);
  return run_batched(ctx, encoder, x, options.slicing);
}

}  // namespace kakusan
