#include "pipeline/memory_planner.h"

#include <algorithm>
#include <string>
#include <vector>

#include "core/arena.h"
#include "core/error.h"
#include "nn/context.h"
#include "pipeline/prompt_attention.h"
#include "pipeline/run_options.h"

namespace kakusan {

Offload run_offload(const GenerateParams& p, Offload loaded) {
  return p.stream_unet_weights ? Offload::Sequential : loaded;
}

int64_t MemoryPlanner::phase_weights(int64_t own, Offload offload) const {
  const bool all_on_device = !backend_.device().is_host() && offload == Offload::None;
  return all_on_device ? bytes_.text_encoder + bytes_.unet + bytes_.vae : own;
}

MemoryEstimate MemoryPlanner::estimate(const GenerateParams& p, Offload offload, const Shape& latents_shape,
                                       int64_t unet_batch) const {
  const VaeMemoryOptions vae_memory = vae_memory_options(p);
  offload = run_offload(p, offload);
  const int64_t unet_weights = offload != Offload::Sequential   ? bytes_.unet
                               : backend_.device().is_host() ? bytes_.unet_streamed
                                                             : bytes_.unet_blockwise;
  MemoryEstimate e;
  e.overhead = kMemoryOverheadBytes;
  const int64_t f32 = sizeof(float);
  const ClipTextConfig& text_config = text_encoder_.config();
  // A1111 syntax encodes up to kMaxPromptChunks chunks per prompt and hands the UNet their concatenation.
  const int64_t chunks = p.prompt_syntax == PromptSyntax::A1111 ? kMaxPromptChunks : 1;
  const int64_t tokens = text_config.max_position_embeddings;
  const int64_t embeds_bytes = unet_batch * chunks * tokens * text_config.hidden_size * f32;
  const int64_t latents_bytes = latents_shape.numel() * f32;
  const int64_t latent_tokens = latents_shape[2] * latents_shape[3];
  {
    const AttentionParams attention = attention_params(p.attention, dtypes_.text_encoder, backend_);
    Arena arena;
    ScratchTally scratch;  // the backend's kernel scratch, reported by the dry pass
    NullBackend null(backend_, scratch);
    Context ctx{null, arena, attention};
    const Tensor ids = Tensor::zeros({int64_t(p.prompt.size()) * chunks, tokens}, DType::I64);
    text_encoder_.forward(ctx, ids);
    e.encoding = {phase_weights(bytes_.text_encoder, offload), int64_t(arena.peak_bytes()),
                  2 * embeds_bytes + backend_.attention_scratch_bytes(attention, tokens, tokens) + scratch.total()};
  }
  {
    const AttentionParams attention = attention_params(p.attention, dtypes_.unet, backend_);
    Arena arena;
    ScratchTally scratch;  // the backend's kernel scratch, reported by the dry pass
    NullBackend null(backend_, scratch);
    Context ctx{null, arena, attention};
    const UNet2DConditionConfig& unet_config = unet_.config();
    Tensor input = Tensor::empty({unet_batch, unet_config.in_channels, latents_shape[2], latents_shape[3]});
    Tensor embeds = Tensor::empty({unet_batch, chunks * tokens, text_config.hidden_size});
    Tensor noise_pred = Tensor::empty({unet_batch, unet_config.out_channels, latents_shape[2], latents_shape[3]});
    const Tensor t = Tensor::full({1}, 999.0f);
    unet_.forward(ctx, input, t, embeds, noise_pred);
    // latents, the CFG input, noise_pred, the guided prediction and the scheduler's history (a few latents).
    e.denoising = {phase_weights(unet_weights, offload), int64_t(arena.peak_bytes()),
                   embeds_bytes + 8 * latents_bytes +
                       backend_.attention_scratch_bytes(attention, latent_tokens, latent_tokens) + scratch.total()};
  }
  {
    const AttentionParams attention = attention_params(p.attention, dtypes_.vae, backend_);
    Arena arena;
    ScratchTally scratch;  // the backend's kernel scratch, reported by the dry pass
    NullBackend null(backend_, scratch);
    Context ctx{null, arena, attention};
    const Tensor z = Tensor::empty(latents_shape);
    const Tensor decoded = vae_.decode(ctx, z, vae_memory);
    // The decoded image, its NHWC copy, the result's float copy and the RGB8 images.
    const int64_t image_bytes = int64_t(decoded.nbytes());
    const int64_t tile_side = vae_.tile_latent_size(vae_memory);  // latent pixels per tile side
    const int64_t vae_tokens = vae_memory.tiling ? std::min(latent_tokens, tile_side * tile_side) : latent_tokens;
    e.decoding = {phase_weights(bytes_.vae, offload), int64_t(arena.peak_bytes()),
                  3 * image_bytes + image_bytes / 4 +
                      backend_.attention_scratch_bytes(attention, vae_tokens, vae_tokens) + scratch.total()};
  }
  if (!p.image.empty()) {
    // The VAE encoder on the input image(s): the whole batch at once with one generator, one image at a time
    // with a generator per image. Beside its arena: the preprocessed image, masked image and mask, the image
    // latents and the noise.
    const AttentionParams attention = attention_params(p.attention, dtypes_.vae, backend_);
    Arena arena;
    ScratchTally scratch;  // the backend's kernel scratch, reported by the dry pass
    NullBackend null(backend_, scratch);
    Context ctx{null, arena, attention};
    const int64_t scale = vae_.downscale_factor();
    const int64_t batch = p.seeds.size() > 1 ? 1 : int64_t(p.image.size());
    const Tensor image = Tensor::empty({batch, 3, latents_shape[2] * scale, latents_shape[3] * scale});
    Generator dry_draws(0);  // the sample's noise is drawn on the host; the dry pass discards it
    vae_.encode_latents(ctx, image, vae_memory, dry_draws);
    const int64_t pixels = latents_shape[2] * latents_shape[3] * scale * scale;
    const int64_t pixels_bytes = int64_t(p.image.size()) * 7 * pixels * f32;  // image 3 + masked 3 + mask 1
    e.image_encoding = {phase_weights(bytes_.vae, offload), int64_t(arena.peak_bytes()),
                        pixels_bytes + 4 * latents_bytes + scratch.total()};
  }
  return e;
}

MemoryEstimate MemoryPlanner::plan(GenerateParams& p, Offload& offload, const Shape& latents_shape,
                                   int64_t unet_batch, GenerateResult& result) const {
  offload = run_offload(p, offload);
  MemoryEstimate e = estimate(p, offload, latents_shape, unet_batch);
  result.memory.estimated_peak = e.peak();
  result.memory.estimated_unet_arena = e.denoising.arena;
  result.memory.estimated_vae_arena = e.decoding.arena;
  result.memory.estimated_vae_encoder_arena = e.image_encoding.arena;
  if (p.memory_policy == GenerateParams::MemoryPolicy::Off) return e;
  // On a device (CUDA) the device's memory, else the machine's.
  const int64_t device_limit = backend_.device_memory_limit();
  const int64_t limit = p.max_memory > 0 ? p.max_memory : device_limit >= 0 ? device_limit : available_memory_bytes();
  if (limit <= 0 || e.peak() <= limit) return e;
  const std::string first_estimate = e.describe();

  // The levers, least costly first. VAE tiling blends tile seams (the image changes slightly, as with
  // diffusers' enable_vae_tiling); the others change nothing beyond float rounding.
  // On a device, offloading (the uploads cost time every run) comes after the levers that cost little; on the
  // host, streaming the UNet's pages is sequential offload's counterpart.
  GenerateParams adapted = p;
  adapted.memory_policy = GenerateParams::MemoryPolicy::Off;
  Offload adapted_offload = offload;
  const bool device = !backend_.device().is_host();
  std::vector<std::string> levers;
  auto pull = [&](bool applies, const char* name, auto&& apply) {
    if (!applies || e.peak() <= limit) return;
    apply(adapted);
    levers.push_back(name);
    e = estimate(adapted, adapted_offload, latents_shape, unet_batch);
  };
  auto offload_to = [&](Offload o) { return [&adapted_offload, o](GenerateParams&) { adapted_offload = o; }; };
  pull(p.attention.mode == AttentionOptions::Mode::Full || p.attention.mode == AttentionOptions::Mode::Sliced,
       "flash attention", [](GenerateParams& q) { q.attention.mode = AttentionOptions::Mode::Flash; });
  pull(!p.vae_slicing && latents_shape[0] > 1, "VAE slicing", [](GenerateParams& q) { q.vae_slicing = true; });
  pull(!p.vae_tiling, "VAE tiling", [](GenerateParams& q) { q.vae_tiling = true; });
  pull(device && offload == Offload::None, "model offload", offload_to(Offload::Model));
  pull(offload != Offload::Sequential, device ? "sequential offload" : "streamed UNet weights",
       offload_to(Offload::Sequential));
  pull(p.vae_tile_size == 0 || p.vae_tile_size > kLowMemoryVaeTile, "256-pixel VAE tiles",
       [](GenerateParams& q) { q.vae_tile_size = kLowMemoryVaeTile; });
  std::string lever_list;
  for (const std::string& name : levers) lever_list += (lever_list.empty() ? "" : ", ") + name;

  if (p.memory_policy == GenerateParams::MemoryPolicy::Auto && e.peak() <= limit) {
    result.warnings.push_back(str_cat("the run needs about ", first_estimate, " but ", format_megabytes(limit),
                                      " is available: using ", lever_list, " (estimate now ",
                                      format_megabytes(e.peak()), ")"));
    p.attention = adapted.attention;
    p.vae_slicing = adapted.vae_slicing;
    p.vae_tiling = adapted.vae_tiling;
    p.vae_tile_size = adapted.vae_tile_size;
    offload = adapted_offload;
    result.memory.estimated_peak = e.peak();
    result.memory.estimated_unet_arena = e.denoising.arena;
    result.memory.estimated_vae_arena = e.decoding.arena;
    result.memory.estimated_vae_encoder_arena = e.image_encoding.arena;
    return e;
  }
  // Refuse, saying what would fit: the levers, or failing that the largest square image that fits with them.
  std::string would_fit;
  if (e.peak() <= limit) {
    would_fit = str_cat("it fits with ", lever_list, " (", format_megabytes(e.peak()), ")");
  } else {
    const int64_t scale = vae_.downscale_factor();
    for (int64_t side = std::max(latents_shape[2], latents_shape[3]) * scale / 64 * 64; side >= 64; side -= 64) {
      const Shape smaller{latents_shape[0], latents_shape[1], side / scale, side / scale};
      const MemoryEstimate small = estimate(adapted, adapted_offload, smaller, unet_batch);
      if (small.peak() <= limit) {
        would_fit = str_cat("a ", side, "x", side, " image would fit (", format_megabytes(small.peak()),
                            lever_list.empty() ? "" : " with ", lever_list, ")");
        break;
      }
    }
    if (would_fit.empty())
      would_fit = str_cat("no size fits: the largest component's weights alone need ",
                          format_megabytes(std::max({bytes_.text_encoder, bytes_.unet, bytes_.vae})));
  }
  fail("not enough memory: the run needs about ", first_estimate, " but the limit is ", format_megabytes(limit),
       p.max_memory > 0     ? std::string(" (max_memory)")
       : device_limit >= 0  ? str_cat(" (free on ", backend_.name(), ")")
                            : std::string(" (MemAvailable)"),
       "; ", would_fit);
}

}  // namespace kakusan
