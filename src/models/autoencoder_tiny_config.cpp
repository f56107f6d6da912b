#include "models/autoencoder_tiny_config.h"

#include "models/config_checks.h"

namespace kakusan {

namespace {

// A block list: 1..kMaxBlocks stages, each with its channel count (all equal: diffusers' EncoderTiny and
// DecoderTiny chain stage i's output into stage i+1 unchanged, so other lists fail there too) and its
// number of AutoencoderTinyBlocks.
void check_stages(const std::string& src, const char* channels_key, const std::vector<int>& channels,
                  const char* blocks_key, const std::vector<int>& blocks) {
  using namespace config_checks;
  KK_CHECK(!channels.empty() && channels.size() <= size_t(kMaxBlocks), src, ": \"", channels_key, "\" has ",
           channels.size(), " entries (expected 1 to ", kMaxBlocks, ")");
  KK_CHECK(blocks.size() == channels.size(), src, ": \"", blocks_key, "\" has ", blocks.size(),
           " entries but \"", channels_key, "\" has ", channels.size());
  for (size_t i = 0; i < channels.size(); ++i) {
    in_range(src, str_cat(channels_key, "[", i, "]"), channels[i], 1, kMaxChannels);
    KK_CHECK(channels[i] == channels[0], src, ": \"", channels_key, "\" must hold one channel count (got ",
             channels[0], " and ", channels[i], "), as diffusers' AutoencoderTiny chains the stages unchanged");
    in_range(src, str_cat(blocks_key, "[", i, "]"), blocks[i], 0, kMaxLayersPerBlock);
  }
}

}  // namespace

AutoencoderTinyConfig AutoencoderTinyConfig::parse(const JsonConfig& json) {
  AutoencoderTinyConfig c;
  const std::string& src = json.source();
  c.in_channels = json.get<int>("in_channels", c.in_channels);
  c.out_channels = json.get<int>("out_channels", c.out_channels);
  c.encoder_block_out_channels = json.get_list<int>("encoder_block_out_channels", c.encoder_block_out_channels);
  c.decoder_block_out_channels = json.get_list<int>("decoder_block_out_channels", c.decoder_block_out_channels);
  c.act_fn = json.get<std::string>("act_fn", c.act_fn);
  c.upsample_fn = json.get<std::string>("upsample_fn", c.upsample_fn);
  c.latent_channels = json.get<int>("latent_channels", c.latent_channels);
  c.upsampling_scaling_factor = json.get<int>("upsampling_scaling_factor", c.upsampling_scaling_factor);
  c.num_encoder_blocks = json.get_list<int>("num_encoder_blocks", c.num_encoder_blocks);
  c.num_decoder_blocks = json.get_list<int>("num_decoder_blocks", c.num_decoder_blocks);
  c.latent_magnitude = json.get<float>("latent_magnitude", c.latent_magnitude);
  c.latent_shift = json.get<float>("latent_shift", c.latent_shift);
  c.scaling_factor = json.get<float>("scaling_factor", c.scaling_factor);

  using config_checks::in_range;
  in_range(src, "in_channels", c.in_channels, 1, config_checks::kMaxChannels);
  in_range(src, "out_channels", c.out_channels, 1, config_checks::kMaxChannels);
  in_range(src, "latent_channels", c.latent_channels, 1, config_checks::kMaxChannels);
  check_stages(src, "encoder_block_out_channels", c.encoder_block_out_channels, "num_encoder_blocks",
               c.num_encoder_blocks);
  check_stages(src, "decoder_block_out_channels", c.decoder_block_out_channels, "num_decoder_blocks",
               c.num_decoder_blocks);
  KK_CHECK(c.encoder_block_out_channels.size() == c.decoder_block_out_channels.size(), src,
           ": the encoder has ", c.encoder_block_out_channels.size(), " stages but the decoder ",
           c.decoder_block_out_channels.size(), " (their scale factors must match)");
  KK_CHECK(c.act_fn == "relu", src, ": \"act_fn\" \"", c.act_fn, "\" is not supported (relu, as TAESD)");
  KK_CHECK(c.upsample_fn == "nearest", src, ": \"upsample_fn\" \"", c.upsample_fn,
           "\" is not supported (nearest)");
  KK_CHECK(c.upsampling_scaling_factor == 2, src, ": \"upsampling_scaling_factor\" = ", c.upsampling_scaling_factor,
           " is not supported (2)");
  KK_CHECK(std::isfinite(c.scaling_factor) && c.scaling_factor != 0.0f, src, ": \"scaling_factor\" must be a ",
           "finite non-zero number");
  if (json.has("block_out_channels"))
    KK_CHECK(json.get_list<int>("block_out_channels", {}) == c.decoder_block_out_channels, src,
             ": \"block_out_channels\" must equal \"decoder_block_out_channels\" (diffusers registers it so)");
  return c;
}

}  // namespace kakusan
