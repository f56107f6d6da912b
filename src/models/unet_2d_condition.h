// UNet2DConditionModel (diffusers' models/unets/unet_2d_condition.py), built from unet/config.json alone.
//
//   UNet2DConditionModel unet = UNet2DConditionModel::load(model_dir / "unet", DType::F16);
//   Context ctx{cpu_backend(), arena, {}};
//   Tensor noise_pred = unet.forward(ctx, latents, timesteps, prompt_embeds);
//
// The model only holds weights; every activation comes from ctx.arena (released when forward returns), so
// after the first step a denoising loop allocates nothing but its result.
#pragma once

#include <filesystem>
#include <vector>

#include "models/activations.h"
#include "models/unet_blocks.h"
#include "models/unet_config.h"

namespace kakusan {

// diffusers' TimestepEmbedding: linear_1 -> SiLU -> linear_2.
struct TimestepEmbedding {
  Linear linear_1, linear_2;

  TimestepEmbedding() = default;
  TimestepEmbedding(int64_t in, int64_t dim) : linear_1(in, dim), linear_2(dim, dim) {}
  void visit(WeightVisitor& v) {
    v.child("linear_1", linear_1);
    v.child("linear_2", linear_2);
  }
};

class UNet2DConditionModel {
 public:
  explicit UNet2DConditionModel(const UNet2DConditionConfig& config);
  // Reads <dir>/config.json and the weights beside it; weight matrices are kept in `weight_dtype`.
  static UNet2DConditionModel load(const std::filesystem::path& dir, DType weight_dtype = DType::F32);

  const UNet2DConditionConfig& config() const { return config_; }
  void visit(WeightVisitor& v);
  // The top-level blocks (down_blocks.i, then mid_block, then up_blocks.i) one at a time: what
  // Context::after_block separates, for sizing what is resident when weights are streamed block by block.
  size_t num_blocks() const { return down_blocks.size() + 1 + up_blocks.size(); }
  void visit_block(size_t i, WeightVisitor& v);

  // sample [B, in_channels, h, w], timesteps float32 [B] (or one value for all), encoder_hidden_states
  // [B, T, cross_attention_dim] -> noise prediction [B, out_channels, h, w]. With `trace`, records
  // time_proj, time_embedding, conv_in, down_blocks.i, mid_block, up_blocks.i, conv_norm_out, conv_out.
  Tensor forward(Context& ctx, const TensorView& sample, const TensorView& timesteps,
                 const TensorView& encoder_hidden_states, Activations* trace = nullptr) const;
  // The same, writing into `out` (contiguous, [B, out_channels, h, w]).
  void forward(Context& ctx, const TensorView& sample, const TensorView& timesteps,
               const TensorView& encoder_hidden_states, const TensorView& out, Activations* trace = nullptr) const;

 private:
  UNet2DConditionConfig config_;
  TimestepEmbedding time_embedding;
  Conv2d conv_in;
  std::vector<UNetDownBlock> down_blocks;
  UNetMidBlock mid_block;
  std::vector<UNetUpBlock> up_blocks;
  GroupNorm conv_norm_out;
  Conv2d conv_out;
};

}  // namespace kakusan
