#include "models/unet_2d_condition.h"

#include "models/model_folder_load.h"

namespace kakusan {

UNet2DConditionModel::UNet2DConditionModel(const UNet2DConditionConfig& config) : config_(config) {
  const UNet2DConditionConfig& c = config_;
  const size_t n = c.num_blocks();
  const std::vector<int>& boc = c.block_out_channels;
  const int64_t temb = c.time_embed_dim();
  time_embedding = TimestepEmbedding(boc[0], temb);
  conv_in = Conv2d(c.in_channels, boc[0], c.conv_in_kernel, 1, (c.conv_in_kernel - 1) / 2);

  const UNetBlockOptions o{temb, c.norm_num_groups, c.norm_eps, c.cross_attention_dim, c.use_linear_projection};
  int64_t out = boc[0];
  for (size_t i = 0; i < n; ++i) {
    const int64_t in = out;
    out = boc[i];
    down_blocks.emplace_back(in, out, c.layers_per_block, c.down_block_types[i] == "CrossAttnDownBlock2D",
                             c.heads(i), c.transformer_layers_per_block[i], i + 1 < n, c.downsample_padding, o);
  }
  mid_block = UNetMidBlock(boc.back(), c.heads(n - 1), c.transformer_layers_per_block.back(), o);
  out = boc[n - 1];
  for (size_t i = 0; i < n; ++i) {
    const size_t r = n - 1 - i;  // the matching down block
    const int64_t prev_out = out;
    out = boc[r];
    const int64_t skip_in = boc[r == 0 ? 0 : r - 1];
    up_blocks.emplace_back(skip_in, out, prev_out, c.layers_per_block + 1, c.up_block_types[i] == "CrossAttnUpBlock2D",
                           c.heads(r), c.transformer_layers_per_block[r], i + 1 < n, o);
  }
  conv_norm_out = GroupNorm(c.norm_num_groups, boc[0], c.norm_eps);
  conv_out = Conv2d(boc[0], c.out_channels, c.conv_out_kernel, 1, (c.conv_out_kernel - 1) / 2);
}

UNet2DConditionModel UNet2DConditionModel::load(const std::filesystem::path& dir, DType weight_dtype) {
  return load_model_folder<UNet2DConditionModel, UNet2DConditionConfig>(dir, weight_dtype, "", "diffusers", "UNet2DConditionModel");
}

void UNet2DConditionModel::visit(WeightVisitor& v) {
  v.child("conv_in", conv_in);
  v.child("time_embedding", time_embedding);
  v.children("down_blocks", down_blocks);
  v.child("mid_block", mid_block);
  v.children("up_blocks", up_blocks);
  v.child("conv_norm_out", conv_norm_out);
  v.child("conv_out", conv_out);
}

void UNet2DConditionModel::visit_block(size_t i, WeightVisitor& v) {
  KK_ASSERT(i < num_blocks());
  if (i < down_blocks.size()) return down_blocks[i].visit(v);
  if (i == down_blocks.size()) return mid_block.visit(v);
  up_blocks[i - down_blocks.size() - 1].visit(v);
}

Tensor UNet2DConditionModel::forward(Context& ctx, const TensorView& sample, const TensorView& timesteps,
                                     const TensorView& encoder_hidden_states, Activations* trace) const {
  Tensor out = ctx.backend.empty({sample.dim(0), config_.out_channels, sample.dim(2), sample.dim(3)}, sample.dtype);
  forward(ctx, sample, timesteps, encoder_hidden_states, out.view(), trace);
  return out;
}

void UNet2DConditionModel::forward(Context& ctx, const TensorView& sample, const TensorView& timesteps,
                                   const TensorView& encoder_hidden_states, const TensorView& out,
                                   Activations* trace) const {
  const UNet2DConditionConfig& c = config_;
  check_compute_dtype(ctx, "UNet");
  const DType dt = ctx.compute_dtype;
  KK_CHECK(sample.rank() == 4 && sample.dim(1) == c.in_channels && sample.dtype == dt, "UNet: sample ",
           sample.shape.str(), " must be ", dtype_name(dt), " [B, ", c.in_channels, ", h, w]");
  const int64_t batch = sample.dim(0);
  KK_CHECK(encoder_hidden_states.rank() == 3 && encoder_hidden_states.dim(0) == batch &&
               encoder_hidden_states.dim(2) == c.cross_attention_dim && encoder_hidden_states.dtype == dt,
           "UNet: encoder_hidden_states ", encoder_hidden_states.shape.str(), " must be ", dtype_name(dt), " [", batch,
           ", T, ",
           c.cross_attention_dim, "]");
  KK_CHECK(out.shape == Shape({batch, c.out_channels, sample.dim(2), sample.dim(3)}) && out.is_contiguous(),
           "UNet: output ", out.shape.str(), " has the wrong shape");
  Backend& be = ctx.backend;
  ArenaScope scope(ctx.arena);

  // 1. time
  const int64_t temb = c.time_embed_dim();
  TensorView t_proj = ctx.arena.alloc({batch, int64_t(c.block_out_channels[0])});
  be.timestep_embedding(timesteps, c.flip_sin_to_cos, c.freq_shift, t_proj);
  record(trace, be, "time_proj", t_proj);
  TensorView emb = ctx.arena.alloc({batch, temb});
  {
    ArenaScope s(ctx.arena);
    TensorView hidden = ctx.arena.alloc({batch, temb});
    time_embedding.linear_1.forward(be, t_proj, hidden);
    be.activation(hidden, Activation::SiLU, hidden);
    time_embedding.linear_2.forward(be, hidden, emb);
  }
  record(trace, be, "time_embedding", emb);
  // Every resnet starts with SiLU(emb): compute it once.
  TensorView temb_act = ctx.arena.alloc({batch, temb});
  be.activation(emb, Activation::SiLU, temb_act);

  // 2. pre-process; 3. down. The skip connections stay in the arena until the up blocks consume them.
  std::vector<TensorView> skips;
  skips.push_back(ctx.arena.alloc(conv_in.out_shape(sample.shape)));
  conv_in.forward(be, sample, skips[0]);
  record(trace, be, "conv_in", skips[0]);
  TensorView h = skips[0];
  for (size_t i = 0; i < down_blocks.size(); ++i) {
    std::vector<TensorView> outputs;
    for (const Shape& s : down_blocks[i].output_shapes(h.shape)) outputs.push_back(ctx.arena.alloc(s));
    down_blocks[i].forward(ctx, h, temb_act, encoder_hidden_states, outputs);
    skips.insert(skips.end(), outputs.begin(), outputs.end());
    h = outputs.back();
    record(trace, be, str_cat("down_blocks.", i), h);
    if (ctx.after_block) ctx.after_block();
  }

  // 4. mid
  TensorView mid = ctx.arena.alloc(h.shape);
  mid_block.forward(ctx, h, temb_act, encoder_hidden_states, mid);
  record(trace, be, "mid_block", mid);
  if (ctx.after_block) ctx.after_block();
  h = mid;

  // 5. up: each block takes its skips from the end of the list.
  for (size_t i = 0; i < up_blocks.size(); ++i) {
    std::vector<TensorView> block_skips;
    for (size_t j = 0; j < up_blocks[i].num_skips(); ++j) {
      block_skips.push_back(skips.back());
      skips.pop_back();
    }
    // Latent sizes that are not multiples of 2^downsamplings shrank by ceil(n/2) on the way down; the
    // upsampler then targets the next skip's size exactly, as diffusers' forward_upsample_size does.
    const Shape next_skip = skips.empty() ? h.shape : skips.back().shape;
    TensorView up = ctx.arena.alloc(up_blocks[i].output_shape(h.shape, next_skip));
    up_blocks[i].forward(ctx, h, block_skips, temb_act, encoder_hidden_states, up);
    record(trace, be, str_cat("up_blocks.", i), up);
    if (ctx.after_block) ctx.after_block();
    h = up;
  }

  // 6. post-process
  TensorView normed = ctx.arena.alloc(h.shape);
  if (trace != nullptr) {  // the golden records conv_norm_out before its SiLU
    conv_norm_out.forward(be, h, normed);
    record(trace, be, "conv_norm_out", normed);
    be.activation(normed, Activation::SiLU, normed);
  } else {
    conv_norm_out.forward(be, h, normed, Activation::SiLU);
  }
  conv_out.forward(be, normed, out);
  record(trace, be, "conv_out", out);
}

}  // namespace kakusan
