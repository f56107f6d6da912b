// UNet2DConditionModel's config.json, typed: the same field names and defaults as diffusers (v0.29.2).
//
// Only what Stable Diffusion 1.x / 2.x use is supported; any other value of a key that changes the
// architecture (class embeddings, addition embeddings, other block types, ...) is refused by parse() with an
// error naming the key, instead of being silently ignored.
#pragma once

#include <string>
#include <vector>

#include "io/json_config.h"

namespace kakusan {

struct UNet2DConditionConfig {
  int sample_size = 64;
  int in_channels = 4;
  int out_channels = 4;
  bool center_input_sample = false;
  bool flip_sin_to_cos = true;
  int freq_shift = 0;
  std::vector<std::string> down_block_types = {"CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
                                               "CrossAttnDownBlock2D", "DownBlock2D"};
  std::string mid_block_type = "UNetMidBlock2DCrossAttn";
  std::vector<std::string> up_block_types = {"UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D",
                                             "CrossAttnUpBlock2D"};
  std::vector<int> block_out_channels = {320, 640, 1280, 1280};
  int layers_per_block = 2;
  int downsample_padding = 1;
  float mid_block_scale_factor = 1.0f;
  std::string act_fn = "silu";
  int norm_num_groups = 32;
  float norm_eps = 1e-5f;
  int cross_attention_dim = 1280;
  std::vector<int> transformer_layers_per_block;  // per down block (int in the file is expanded)
  // diffusers' naming quirk: for SD, `attention_head_dim` holds the number of heads per block.
  std::vector<int> attention_head_dim;             // per down block (int in the file is expanded)
  bool use_linear_projection = false;
  bool upcast_attention = false;
  int conv_in_kernel = 3;
  int conv_out_kernel = 3;
  int time_embedding_dim = 0;  // 0: 4 * block_out_channels[0], as diffusers' None

  // Reads and validates a config.json (throws Error naming the file and key).
  static UNet2DConditionConfig parse(const JsonConfig& json);

  size_t num_blocks() const { return block_out_channels.size(); }
  // Heads of the attention layers in down block i (the mid block uses the last entry, up blocks the
  // reversed list), as diffusers computes num_attention_heads = num_attention_heads or attention_head_dim.
  int heads(size_t block) const { return attention_head_dim[block]; }
  int time_embed_dim() const { return time_embedding_dim > 0 ? time_embedding_dim : 4 * block_out_channels[0]; }
};

}  // namespace kakusan
