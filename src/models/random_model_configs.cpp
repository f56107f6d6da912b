// The configs of the models make-random-model knows by name, as data: the files of the Hugging Face repos
// runwayml/stable-diffusion-v1-5 and stabilityai/stable-diffusion-2-1 (unet, vae, text_encoder, scheduler),
// and the golden kit's tiny-sd.
#include "models/random_model.h"

#include "core/error.h"
#include "io/model_folder.h"

namespace kakusan {

namespace {

constexpr const char* kSd15Unet = R"({
  "_class_name": "UNet2DConditionModel", "_diffusers_version": "0.6.0", "act_fn": "silu",
  "attention_head_dim": 8, "block_out_channels": [320, 640, 1280, 1280], "center_input_sample": false,
  "cross_attention_dim": 768,
  "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
  "downsample_padding": 1, "flip_sin_to_cos": true, "freq_shift": 0, "in_channels": 4, "layers_per_block": 2,
  "mid_block_scale_factor": 1, "norm_eps": 1e-05, "norm_num_groups": 32, "out_channels": 4, "sample_size": 64,
  "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"]
})";

constexpr const char* kSd21Unet = R"({
  "_class_name": "UNet2DConditionModel", "_diffusers_version": "0.10.0.dev0", "act_fn": "silu",
  "attention_head_dim": [5, 10, 20, 20], "block_out_channels": [320, 640, 1280, 1280],
  "center_input_sample": false, "cross_attention_dim": 1024,
  "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
  "downsample_padding": 1, "dual_cross_attention": false, "flip_sin_to_cos": true, "freq_shift": 0,
  "in_channels": 4, "layers_per_block": 2, "mid_block_scale_factor": 1, "norm_eps": 1e-05, "norm_num_groups": 32,
  "num_class_embeds": null, "only_cross_attention": false, "out_channels": 4, "sample_size": 96,
  "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
  "upcast_attention": true, "use_linear_projection": true
})";

constexpr const char* kTinyUnet = R"({
  "_class_name": "UNet2DConditionModel", "_diffusers_version": "0.29.2", "act_fn": "silu",
  "attention_head_dim": 8, "block_out_channels": [32, 64, 64, 64], "cross_attention_dim": 32,
  "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
  "flip_sin_to_cos": true, "freq_shift": 0, "in_channels": 4, "layers_per_block": 2, "norm_eps": 1e-05,
  "norm_num_groups": 16, "out_channels": 4, "sample_size": 8, "use_linear_projection": false,
  "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"]
})";

constexpr const char* kSdVae = R"({
  "_class_name": "AutoencoderKL", "_diffusers_version": "0.6.0", "act_fn": "silu",
  "block_out_channels": [128, 256, 512, 512],
  "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"],
  "in_channels": 3, "latent_channels": 4, "layers_per_block": 2, "norm_num_groups": 32, "out_channels": 3,
  "sample_size": 512,
  "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"]
})";

constexpr const char* kTinyVae = R"({
  "_class_name": "AutoencoderKL", "_diffusers_version": "0.29.2", "act_fn": "silu",
  "block_out_channels": [16, 32, 32, 32],
  "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"],
  "in_channels": 3, "latent_channels": 4, "layers_per_block": 2, "norm_num_groups": 16, "out_channels": 3,
  "sample_size": 64, "scaling_factor": 0.18215,
  "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"]
})";

constexpr const char* kSd15TextEncoder = R"({
  "_name_or_path": "openai/clip-vit-large-patch14", "architectures": ["CLIPTextModel"], "attention_dropout": 0.0,
  "bos_token_id": 0, "dropout": 0.0, "eos_token_id": 2, "hidden_act": "quick_gelu", "hidden_size": 768,
  "initializer_factor": 1.0, "initializer_range": 0.02, "intermediate_size": 3072, "layer_norm_eps": 1e-05,
  "max_position_embeddings": 77, "model_type": "clip_text_model", "num_attention_heads": 12,
  "num_hidden_layers": 12, "pad_token_id": 1, "projection_dim": 768, "torch_dtype": "float32",
  "transformers_version": "4.22.0.dev0", "vocab_size": 49408
})";

constexpr const char* kSd21TextEncoder = R"({
  "_name_or_path": "hf-models/stable-diffusion-v2-768x768/text_encoder", "architectures": ["CLIPTextModel"],
  "attention_dropout": 0.0, "bos_token_id": 0, "dropout": 0.0, "eos_token_id": 2, "hidden_act": "gelu",
  "hidden_size": 1024, "initializer_factor": 1.0, "initializer_range": 0.02, "intermediate_size": 4096,
  "layer_norm_eps": 1e-05, "max_position_embeddings": 77, "model_type": "clip_text_model",
  "num_attention_heads": 16, "num_hidden_layers": 23, "pad_token_id": 1, "projection_dim": 512,
  "torch_dtype": "float32", "transformers_version": "4.25.0.dev0", "vocab_size": 49408
})";

constexpr const char* kTinyTextEncoder = R"({
  "architectures": ["CLIPTextModel"], "attention_dropout": 0.0, "bos_token_id": 0, "dropout": 0.0,
  "eos_token_id": 2, "hidden_act": "quick_gelu", "hidden_size": 32, "initializer_factor": 1.0,
  "initializer_range": 0.02, "intermediate_size": 37, "layer_norm_eps": 1e-05, "max_position_embeddings": 77,
  "model_type": "clip_text_model", "num_attention_heads": 4, "num_hidden_layers": 2, "pad_token_id": 1,
  "projection_dim": 32, "torch_dtype": "float32", "transformers_version": "4.40.2", "vocab_size": 49408
})";

constexpr const char* kPndmScheduler = R"({
  "_class_name": "PNDMScheduler", "_diffusers_version": "0.6.0", "beta_end": 0.012,
  "beta_schedule": "scaled_linear", "beta_start": 0.00085, "clip_sample": false, "num_train_timesteps": 1000,
  "set_alpha_to_one": false, "skip_prk_steps": true, "steps_offset": 1, "trained_betas": null
})";

constexpr const char* kSd21Scheduler = R"({
  "_class_name": "DDIMScheduler", "_diffusers_version": "0.8.0", "beta_end": 0.012,
  "beta_schedule": "scaled_linear", "beta_start": 0.00085, "clip_sample": false, "num_train_timesteps": 1000,
  "prediction_type": "v_prediction", "set_alpha_to_one": false, "skip_prk_steps": true, "steps_offset": 1,
  "trained_betas": null
})";

}  // namespace

RandomModelSpec RandomModelSpec::builtin(const std::string& name) {
  using nlohmann::json;
  RandomModelSpec s;
  if (name == "sd15") {
    s = {stable_diffusion_model_index("0.6.0", "PNDMScheduler"), json::parse(kSd15Unet), json::parse(kSdVae),
         json::parse(kSd15TextEncoder), json::parse(kPndmScheduler)};
  } else if (name == "sd21") {
    s = {stable_diffusion_model_index("0.10.0.dev0", "DDIMScheduler"), json::parse(kSd21Unet), json::parse(kSdVae),
         json::parse(kSd21TextEncoder), json::parse(kSd21Scheduler)};
    s.vae["_diffusers_version"] = "0.10.0.dev0";
    s.vae["sample_size"] = 768;
  } else if (name == "tiny") {
    s = {stable_diffusion_model_index("0.29.2", "PNDMScheduler"), json::parse(kTinyUnet), json::parse(kTinyVae),
         json::parse(kTinyTextEncoder), json::parse(kPndmScheduler)};
  } else if (name == "sd15-inpaint" || name == "tiny-inpaint") {
    // runwayml/stable-diffusion-inpainting's layout: the UNet also takes the mask and the masked image's
    // latents (4 + 1 + 4 input channels), saved as a StableDiffusionInpaintPipeline.
    s = builtin(name == "sd15-inpaint" ? "sd15" : "tiny");
    s.unet["in_channels"] = 9;
    s.model_index["_class_name"] = "StableDiffusionInpaintPipeline";
  } else {
    fail("unknown built-in model config \"", name,
         "\" (choose sd15, sd21, tiny, sd15-inpaint, tiny-inpaint, or give a JSON file or model folder)");
  }
  return s;
}

}  // namespace kakusan
