// The tables of checkpoint_tables.h: data first, then the two small functions that read it.
#include "io/checkpoint_tables.h"

#include "core/error.h"

namespace kakusan {

namespace {

// ---- UNet (model.diffusion_model.) ----

const std::vector<LayerRename> kUnetResnet = {
    {"in_layers.0.*", "norm1.*"},          {"in_layers.2.*", "conv1.*"},
    {"out_layers.0.*", "norm2.*"},         {"out_layers.3.*", "conv2.*"},
    {"emb_layers.1.*", "time_emb_proj.*"}, {"skip_connection.*", "conv_shortcut.*"},
};

// input_blocks: 0 is conv_in, then per down block two (resnet, attention) pairs and a downsampler;
// output_blocks: per up block three (resnet, attention) pairs, the upsampler after the third.
const std::vector<BlockRename> kUnetBlocks = {
    {"time_embed.0.", "time_embedding.linear_1."},
    {"time_embed.2.", "time_embedding.linear_2."},
    {"input_blocks.0.0.", "conv_in."},
    {"input_blocks.1.0.", "down_blocks.0.resnets.0.", &kUnetResnet},
    {"input_blocks.1.1.", "down_blocks.0.attentions.0."},
    {"input_blocks.2.0.", "down_blocks.0.resnets.1.", &kUnetResnet},
    {"input_blocks.2.1.", "down_blocks.0.attentions.1."},
    {"input_blocks.3.0.op.", "down_blocks.0.downsamplers.0.conv."},
    {"input_blocks.4.0.", "down_blocks.1.resnets.0.", &kUnetResnet},
    {"input_blocks.4.1.", "down_blocks.1.attentions.0."},
    {"input_blocks.5.0.", "down_blocks.1.resnets.1.", &kUnetResnet},
    {"input_blocks.5.1.", "down_blocks.1.attentions.1."},
    {"input_blocks.6.0.op.", "down_blocks.1.downsamplers.0.conv."},
    {"input_blocks.7.0.", "down_blocks.2.resnets.0.", &kUnetResnet},
    {"input_blocks.7.1.", "down_blocks.2.attentions.0."},
    {"input_blocks.8.0.", "down_blocks.2.resnets.1.", &kUnetResnet},
    {"input_blocks.8.1.", "down_blocks.2.attentions.1."},
    {"input_blocks.9.0.op.", "down_blocks.2.downsamplers.0.conv."},
    {"input_blocks.10.0.", "down_blocks.3.resnets.0.", &kUnetResnet},
    {"input_blocks.11.0.", "down_blocks.3.resnets.1.", &kUnetResnet},
    {"middle_block.0.", "mid_block.resnets.0.", &kUnetResnet},
    {"middle_block.1.", "mid_block.attentions.0."},
    {"middle_block.2.", "mid_block.resnets.1.", &kUnetResnet},
    {"output_blocks.0.0.", "up_blocks.0.resnets.0.", &kUnetResnet},
    {"output_blocks.1.0.", "up_blocks.0.resnets.1.", &kUnetResnet},
    {"output_blocks.2.0.", "up_blocks.0.resnets.2.", &kUnetResnet},
    {"output_blocks.2.1.", "up_blocks.0.upsamplers.0."},
    {"output_blocks.3.0.", "up_blocks.1.resnets.0.", &kUnetResnet},
    {"output_blocks.3.1.", "up_blocks.1.attentions.0."},
    {"output_blocks.4.0.", "up_blocks.1.resnets.1.", &kUnetResnet},
    {"output_blocks.4.1.", "up_blocks.1.attentions.1."},
    {"output_blocks.5.0.", "up_blocks.1.resnets.2.", &kUnetResnet},
    {"output_blocks.5.1.", "up_blocks.1.attentions.2."},
    {"output_blocks.5.2.", "up_blocks.1.upsamplers.0."},
    {"output_blocks.6.0.", "up_blocks.2.resnets.0.", &kUnetResnet},
    {"output_blocks.6.1.", "up_blocks.2.attentions.0."},
    {"output_blocks.7.0.", "up_blocks.2.resnets.1.", &kUnetResnet},
    {"output_blocks.7.1.", "up_blocks.2.attentions.1."},
    {"output_blocks.8.0.", "up_blocks.2.resnets.2.", &kUnetResnet},
    {"output_blocks.8.1.", "up_blocks.2.attentions.2."},
    {"output_blocks.8.2.", "up_blocks.2.upsamplers.0."},
    {"output_blocks.9.0.", "up_blocks.3.resnets.0.", &kUnetResnet},
    {"output_blocks.9.1.", "up_blocks.3.attentions.0."},
    {"output_blocks.10.0.", "up_blocks.3.resnets.1.", &kUnetResnet},
    {"output_blocks.10.1.", "up_blocks.3.attentions.1."},
    {"output_blocks.11.0.", "up_blocks.3.resnets.2.", &kUnetResnet},
    {"output_blocks.11.1.", "up_blocks.3.attentions.2."},
    {"out.0.", "conv_norm_out."},
    {"out.2.", "conv_out."},
};

// ---- VAE (first_stage_model.) ----

const std::vector<LayerRename> kVaeResnet = {{"nin_shortcut.*", "conv_shortcut.*"}};

// The mid-block attention's projections are 1x1 convolutions in the original, linear layers in diffusers.
const std::vector<LayerRename> kVaeAttention = {
    {"norm.*", "group_norm.*"},
    {"q.weight", "to_q.weight", 2, 4},           {"q.bias", "to_q.bias"},
    {"k.weight", "to_k.weight", 2, 4},           {"k.bias", "to_k.bias"},
    {"v.weight", "to_v.weight", 2, 4},           {"v.bias", "to_v.bias"},
    {"proj_out.weight", "to_out.0.weight", 2, 4}, {"proj_out.bias", "to_out.0.bias"},
};

// The decoder's up blocks count in the other direction (original up.3 is diffusers' up_blocks.0).
const std::vector<BlockRename> kVaeBlocks = {
    {"encoder.down.0.block.0.", "encoder.down_blocks.0.resnets.0.", &kVaeResnet},
    {"encoder.down.0.block.1.", "encoder.down_blocks.0.resnets.1.", &kVaeResnet},
    {"encoder.down.0.downsample.", "encoder.down_blocks.0.downsamplers.0."},
    {"encoder.down.1.block.0.", "encoder.down_blocks.1.resnets.0.", &kVaeResnet},
    {"encoder.down.1.block.1.", "encoder.down_blocks.1.resnets.1.", &kVaeResnet},
    {"encoder.down.1.downsample.", "encoder.down_blocks.1.downsamplers.0."},
    {"encoder.down.2.block.0.", "encoder.down_blocks.2.resnets.0.", &kVaeResnet},
    {"encoder.down.2.block.1.", "encoder.down_blocks.2.resnets.1.", &kVaeResnet},
    {"encoder.down.2.downsample.", "encoder.down_blocks.2.downsamplers.0."},
    {"encoder.down.3.block.0.", "encoder.down_blocks.3.resnets.0.", &kVaeResnet},
    {"encoder.down.3.block.1.", "encoder.down_blocks.3.resnets.1.", &kVaeResnet},
    {"encoder.mid.block_1.", "encoder.mid_block.resnets.0.", &kVaeResnet},
    {"encoder.mid.attn_1.", "encoder.mid_block.attentions.0.", &kVaeAttention},
    {"encoder.mid.block_2.", "encoder.mid_block.resnets.1.", &kVaeResnet},
    {"encoder.norm_out.", "encoder.conv_norm_out."},
    {"decoder.mid.block_1.", "decoder.mid_block.resnets.0.", &kVaeResnet},
    {"decoder.mid.attn_1.", "decoder.mid_block.attentions.0.", &kVaeAttention},
    {"decoder.mid.block_2.", "decoder.mid_block.resnets.1.", &kVaeResnet},
    {"decoder.up.3.block.0.", "decoder.up_blocks.0.resnets.0.", &kVaeResnet},
    {"decoder.up.3.block.1.", "decoder.up_blocks.0.resnets.1.", &kVaeResnet},
    {"decoder.up.3.block.2.", "decoder.up_blocks.0.resnets.2.", &kVaeResnet},
    {"decoder.up.3.upsample.", "decoder.up_blocks.0.upsamplers.0."},
    {"decoder.up.2.block.0.", "decoder.up_blocks.1.resnets.0.", &kVaeResnet},
    {"decoder.up.2.block.1.", "decoder.up_blocks.1.resnets.1.", &kVaeResnet},
    {"decoder.up.2.block.2.", "decoder.up_blocks.1.resnets.2.", &kVaeResnet},
    {"decoder.up.2.upsample.", "decoder.up_blocks.1.upsamplers.0."},
    {"decoder.up.1.block.0.", "decoder.up_blocks.2.resnets.0.", &kVaeResnet},
    {"decoder.up.1.block.1.", "decoder.up_blocks.2.resnets.1.", &kVaeResnet},
    {"decoder.up.1.block.2.", "decoder.up_blocks.2.resnets.2.", &kVaeResnet},
    {"decoder.up.1.upsample.", "decoder.up_blocks.2.upsamplers.0."},
    {"decoder.up.0.block.0.", "decoder.up_blocks.3.resnets.0.", &kVaeResnet},
    {"decoder.up.0.block.1.", "decoder.up_blocks.3.resnets.1.", &kVaeResnet},
    {"decoder.up.0.block.2.", "decoder.up_blocks.3.resnets.2.", &kVaeResnet},
    {"decoder.norm_out.", "decoder.conv_norm_out."},
};

// ---- Text encoders ----

// Files written by transformers >= 4.x keep "text_model."; older ones (the first SD 1.x files) do not.
const std::vector<BlockRename> kClipBlocks = {
    {"text_model.", "text_model."},
    {"", "text_model."},
};

const std::vector<LayerRename> kOpenClipResblock = {
    {"ln_1.*", "layer_norm1.*"},
    {"ln_2.*", "layer_norm2.*"},
    {"attn.out_proj.*", "self_attn.out_proj.*"},
    {"attn.in_proj_weight", "self_attn.in_proj_weight"},
    {"attn.in_proj_bias", "self_attn.in_proj_bias"},
    {"mlp.c_fc.*", "mlp.fc1.*"},
    {"mlp.c_proj.*", "mlp.fc2.*"},
};

}  // namespace

const ComponentLayout& ldm_unet_layout() {
  static const ComponentLayout layout{"model.diffusion_model.", kUnetBlocks, true};
  return layout;
}

const ComponentLayout& ldm_vae_layout() {
  static const ComponentLayout layout{"first_stage_model.", kVaeBlocks, true};
  return layout;
}

const ComponentLayout& ldm_clip_layout() {
  static const ComponentLayout layout{"cond_stage_model.transformer.", kClipBlocks, false};
  return layout;
}

ComponentLayout ldm_open_clip_layout(int num_layers) {
  ComponentLayout layout{"cond_stage_model.model.", {}, false};
  layout.blocks.push_back({"token_embedding.weight", "text_model.embeddings.token_embedding.weight"});
  layout.blocks.push_back({"positional_embedding", "text_model.embeddings.position_embedding.weight"});
  for (int i = 0; i < num_layers; ++i)
    layout.blocks.push_back({str_cat("transformer.resblocks.", i, "."), str_cat("text_model.encoder.layers.", i, "."),
                             &kOpenClipResblock});
  layout.blocks.push_back({"ln_final.", "text_model.final_layer_norm."});
  return layout;
}

// Per block: its layer renames, then the block's other names under the block's new prefix.
std::vector<WeightRename> expand(const ComponentLayout& layout) {
  std::vector<WeightRename> rules;
  for (const BlockRename& block : layout.blocks) {
    const std::string from = layout.prefix + block.original;
    if (block.layers)
      for (const LayerRename& layer : *block.layers)
        rules.push_back({from + layer.original, block.diffusers + layer.diffusers, layer.rank});
    rules.push_back({from + "*", block.diffusers + "*"});
  }
  if (layout.keep_unclaimed) rules.push_back({layout.prefix + "*", "*"});
  return rules;
}

// The same rules read from right to left, in the same order.
std::optional<OriginalName> original_name(const ComponentLayout& layout, const std::string& diffusers_name) {
  for (const BlockRename& block : layout.blocks) {
    const std::string from = layout.prefix + block.original;
    if (block.layers)
      for (const LayerRename& layer : *block.layers)
        if (auto name = apply_rename({block.diffusers + layer.diffusers, from + layer.original}, diffusers_name))
          return OriginalName{*name, layer.original_rank};
    if (auto name = apply_rename({block.diffusers + "*", from + "*"}, diffusers_name)) return OriginalName{*name, 0};
  }
  if (layout.keep_unclaimed) return OriginalName{layout.prefix + diffusers_name, 0};
  return std::nullopt;
}

}  // namespace kakusan
