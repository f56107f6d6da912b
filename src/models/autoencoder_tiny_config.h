// AutoencoderTiny's (TAESD's) config.json, typed: diffusers' field names and defaults (v0.29.2).
#pragma once

#include <string>
#include <vector>

#include "io/json_config.h"

namespace kakusan {

struct AutoencoderTinyConfig {
  int in_channels = 3;
  int out_channels = 3;
  std::vector<int> encoder_block_out_channels = {64, 64, 64, 64};
  std::vector<int> decoder_block_out_channels = {64, 64, 64, 64};
  std::string act_fn = "relu";
  std::string upsample_fn = "nearest";
  int latent_channels = 4;
  int upsampling_scaling_factor = 2;
  std::vector<int> num_encoder_blocks = {1, 3, 3, 3};
  std::vector<int> num_decoder_blocks = {3, 3, 3, 1};
  float latent_magnitude = 3;  // scale_latents / unscale_latents only (8-bit latent previews), not decode
  float latent_shift = 0.5f;
  float scaling_factor = 1.0f;

  static AutoencoderTinyConfig parse(const JsonConfig& json);

  // Spatial factor between image and latents: diffusers' pipelines take 2^(len(block_out_channels) - 1), and
  // AutoencoderTiny registers block_out_channels = decoder_block_out_channels.
  int downscale_factor() const { return 1 << (int(decoder_block_out_channels.size()) - 1); }
};

}  // namespace kakusan
