#include "models/vae_config.h"

#include "models/config_checks.h"

namespace kakusan {

AutoencoderKLConfig AutoencoderKLConfig::parse(const JsonConfig& json) {
  AutoencoderKLConfig c;
  const std::string& src = json.source();
  c.in_channels = json.get<int>("in_channels", c.in_channels);
  c.out_channels = json.get<int>("out_channels", c.out_channels);
  c.down_block_types = json.get_list<std::string>("down_block_types", c.down_block_types);
  c.up_block_types = json.get_list<std::string>("up_block_types", c.up_block_types);
  c.block_out_channels = json.get_list<int>("block_out_channels", c.block_out_channels);
  c.layers_per_block = json.get<int>("layers_per_block", c.layers_per_block);
  c.act_fn = json.get<std::string>("act_fn", c.act_fn);
  c.latent_channels = json.get<int>("latent_channels", c.latent_channels);
  c.norm_num_groups = json.get<int>("norm_num_groups", c.norm_num_groups);
  c.sample_size = config_checks::sample_size(json, c.sample_size);
  c.scaling_factor = json.get<float>("scaling_factor", c.scaling_factor);
  c.use_quant_conv = json.get<bool>("use_quant_conv", c.use_quant_conv);
  c.use_post_quant_conv = json.get<bool>("use_post_quant_conv", c.use_post_quant_conv);
  c.mid_block_add_attention = json.get<bool>("mid_block_add_attention", c.mid_block_add_attention);

  const size_t n = c.block_out_channels.size();
  config_checks::block_counts(src, n, c.down_block_types, c.up_block_types);
  config_checks::block_types(src, "down_block_types", c.down_block_types, {"DownEncoderBlock2D"});
  config_checks::block_types(src, "up_block_types", c.up_block_types, {"UpDecoderBlock2D"});
  KK_CHECK(c.act_fn == "silu", src, ": \"act_fn\" \"", c.act_fn, "\" is not supported (silu)");
  using config_checks::in_range;
  in_range(src, "in_channels", c.in_channels, 1, config_checks::kMaxChannels);
  in_range(src, "out_channels", c.out_channels, 1, config_checks::kMaxChannels);
  in_range(src, "latent_channels", c.latent_channels, 1, config_checks::kMaxChannels);
  in_range(src, "layers_per_block", c.layers_per_block, 1, config_checks::kMaxLayersPerBlock);
  config_checks::block_channels(src, c.block_out_channels, c.norm_num_groups);
  KK_CHECK(!json.has("shift_factor") || json.get<float>("shift_factor", 0.0f) == 0.0f, src,
           ": \"shift_factor\" is not supported (only null, as in Stable Diffusion 1.x/2.x)");
  KK_CHECK(!json.has("latents_mean") && !json.has("latents_std"), src,
           ": \"latents_mean\"/\"latents_std\" are not supported (only null)");
  return c;
}

}  // namespace kakusan
