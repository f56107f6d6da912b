// AutoencoderKL's config.json, typed: the same field names and defaults as diffusers (v0.29.2).
#pragma once

#include <string>
#include <vector>

#include "io/json_config.h"

namespace kakusan {

struct AutoencoderKLConfig {
  int in_channels = 3;
  int out_channels = 3;
  std::vector<std::string> down_block_types = {"DownEncoderBlock2D"};
  std::vector<std::string> up_block_types = {"UpDecoderBlock2D"};
  std::vector<int> block_out_channels = {64};
  int layers_per_block = 1;
  std::string act_fn = "silu";
  int latent_channels = 4;
  int norm_num_groups = 32;
  int sample_size = 32;  // image size the VAE was trained on; sets the tile size of tiled decoding
  float scaling_factor = 0.18215f;
  bool use_quant_conv = true;
  bool use_post_quant_conv = true;
  bool mid_block_add_attention = true;

  static AutoencoderKLConfig parse(const JsonConfig& json);

  // Spatial factor between image and latents (2 per downsampling block).
  int downscale_factor() const { return 1 << (int(block_out_channels.size()) - 1); }
};

}  // namespace kakusan
