#include "models/unet_config.h"

#include <algorithm>

#include "models/config_checks.h"

namespace kakusan {

namespace {

// Keys that must keep their "off" value: each would add a module or a code path SD does not use.
void require_null(const JsonConfig& json, const std::string& key) {
  KK_CHECK(!json.has(key), json.source(), ": \"", key, "\" = ", json.json()[key].dump(),
           " is not supported (only null, as in Stable Diffusion 1.x/2.x)");
}

template <typename T>
void require_value(const JsonConfig& json, const std::string& key, const T& supported) {
  const T value = json.get<T>(key, supported);
  KK_CHECK(value == supported, json.source(), ": \"", key, "\" = ", json.json()[key].dump(),
           " is not supported (only ", nlohmann::json(supported).dump(), ")");
}

}  // namespace

UNet2DConditionConfig UNet2DConditionConfig::parse(const JsonConfig& json) {
  UNet2DConditionConfig c;
  const std::string& src = json.source();
  c.sample_size = config_checks::sample_size(json, c.sample_size);
  c.in_channels = json.get<int>("in_channels", c.in_channels);
  c.out_channels = json.get<int>("out_channels", c.out_channels);
  c.center_input_sample = json.get<bool>("center_input_sample", c.center_input_sample);
  c.flip_sin_to_cos = json.get<bool>("flip_sin_to_cos", c.flip_sin_to_cos);
  c.freq_shift = json.get<int>("freq_shift", c.freq_shift);
  c.down_block_types = json.get_list<std::string>("down_block_types", c.down_block_types);
  c.mid_block_type = json.get<std::string>("mid_block_type", c.mid_block_type);
  c.up_block_types = json.get_list<std::string>("up_block_types", c.up_block_types);
  c.block_out_channels = json.get_list<int>("block_out_channels", c.block_out_channels);
  c.layers_per_block = json.get<int>("layers_per_block", c.layers_per_block);
  c.downsample_padding = json.get<int>("downsample_padding", c.downsample_padding);
  c.mid_block_scale_factor = json.get<float>("mid_block_scale_factor", c.mid_block_scale_factor);
  c.act_fn = json.get<std::string>("act_fn", c.act_fn);
  c.norm_num_groups = json.get<int>("norm_num_groups", c.norm_num_groups);
  c.norm_eps = json.get<float>("norm_eps", c.norm_eps);
  c.cross_attention_dim = json.get<int>("cross_attention_dim", c.cross_attention_dim);
  c.use_linear_projection = json.get<bool>("use_linear_projection", c.use_linear_projection);
  c.upcast_attention = json.get<bool>("upcast_attention", c.upcast_attention);
  c.conv_in_kernel = json.get<int>("conv_in_kernel", c.conv_in_kernel);
  c.conv_out_kernel = json.get<int>("conv_out_kernel", c.conv_out_kernel);
  c.time_embedding_dim = json.get<int>("time_embedding_dim", 0);

  const size_t n = c.block_out_channels.size();
  config_checks::block_counts(src, n, c.down_block_types, c.up_block_types);
  c.attention_head_dim = json.get_int_or_list("attention_head_dim", 8, n);
  c.transformer_layers_per_block = json.get_int_or_list("transformer_layers_per_block", 1, n);

  config_checks::block_types(src, "down_block_types", c.down_block_types, {"CrossAttnDownBlock2D", "DownBlock2D"});
  config_checks::block_types(src, "up_block_types", c.up_block_types, {"CrossAttnUpBlock2D", "UpBlock2D"});
  KK_CHECK(c.mid_block_type == "UNetMidBlock2DCrossAttn", src, ": \"mid_block_type\" \"", c.mid_block_type,
           "\" is not supported (UNetMidBlock2DCrossAttn)");
  KK_CHECK(c.act_fn == "silu", src, ": \"act_fn\" \"", c.act_fn, "\" is not supported (silu)");
  using config_checks::in_range;
  in_range(src, "in_channels", c.in_channels, 1, config_checks::kMaxChannels);
  in_range(src, "out_channels", c.out_channels, 1, config_checks::kMaxChannels);
  in_range(src, "cross_attention_dim", c.cross_attention_dim, 1, config_checks::kMaxChannels);
  in_range(src, "time_embedding_dim", c.time_embedding_dim, 0, 4 * config_checks::kMaxChannels);  // 0: default
  in_range(src, "layers_per_block", c.layers_per_block, 1, config_checks::kMaxLayersPerBlock);
  in_range(src, "conv_in_kernel", c.conv_in_kernel, 1, config_checks::kMaxKernel);
  in_range(src, "conv_out_kernel", c.conv_out_kernel, 1, config_checks::kMaxKernel);
  in_range(src, "downsample_padding", c.downsample_padding, 0, config_checks::kMaxKernel);
  KK_CHECK(c.conv_in_kernel % 2 == 1 && c.conv_out_kernel % 2 == 1, src,
           ": \"conv_in_kernel\"/\"conv_out_kernel\" must be odd");
  KK_CHECK(c.mid_block_scale_factor == 1.0f, src, ": \"mid_block_scale_factor\" other than 1 is not supported");
  KK_CHECK(!c.center_input_sample, src, ": \"center_input_sample\" true is not supported");
  config_checks::block_channels(src, c.block_out_channels, c.norm_num_groups);
  // The sinusoidal time embedding divides by (block_out_channels[0] / 2 - freq_shift).
  in_range(src, "freq_shift", c.freq_shift, 0, std::max(0, c.block_out_channels[0] / 2 - 1));
  int64_t transformer_layers = 0;  // down blocks hold layers_per_block of them, up blocks one more, mid one
  for (size_t i = 0; i < n; ++i) {
    const int ch = c.block_out_channels[i], heads = c.attention_head_dim[i];
    in_range(src, str_cat("attention_head_dim[", i, "]"), heads, 1, ch);
    KK_CHECK(ch % heads == 0, src, ": \"attention_head_dim\"[", i, "] = ", heads,
             " (the number of heads) does not divide block_out_channels[", i, "] = ", ch);
    in_range(src, str_cat("transformer_layers_per_block[", i, "]"), c.transformer_layers_per_block[i], 1,
             config_checks::kMaxLayersPerBlock);
    transformer_layers += int64_t(c.transformer_layers_per_block[i]) * (2 * c.layers_per_block + 1);
  }
  transformer_layers += c.transformer_layers_per_block.back();
  KK_CHECK(transformer_layers <= config_checks::kMaxTotalLayers, src, ": \"transformer_layers_per_block\" x ",
           "\"layers_per_block\" asks for ", transformer_layers, " transformer layers (at most ",
           config_checks::kMaxTotalLayers, " supported)");
  // diffusers itself refuses num_attention_heads for this model (a naming issue it keeps for compatibility).
  KK_CHECK(!json.has("num_attention_heads"), src,
           ": \"num_attention_heads\" is not supported; diffusers reads the head count from \"attention_head_dim\"");
  for (const char* key : {"class_embed_type", "addition_embed_type", "addition_time_embed_dim", "num_class_embeds",
                          "time_cond_proj_dim", "encoder_hid_dim", "encoder_hid_dim_type", "timestep_post_act",
                          "time_embedding_act_fn", "cross_attention_norm", "projection_class_embeddings_input_dim",
                          "mid_block_only_cross_attention", "reverse_transformer_layers_per_block"})
    require_null(json, key);
  require_value<bool>(json, "dual_cross_attention", false);
  require_value<bool>(json, "only_cross_attention", false);
  require_value<bool>(json, "resnet_skip_time_act", false);
  require_value<bool>(json, "class_embeddings_concat", false);
  require_value<std::string>(json, "resnet_time_scale_shift", "default");
  require_value<std::string>(json, "time_embedding_type", "positional");
  require_value<std::string>(json, "attention_type", "default");
  require_value<float>(json, "resnet_out_scale_factor", 1.0f);
  KK_CHECK(!json.has("cross_attention_dim") || json.json()["cross_attention_dim"].is_number_integer(), src,
           ": \"cross_attention_dim\" must be a single integer (per-block lists are not supported)");
  return c;
}

}  // namespace kakusan
