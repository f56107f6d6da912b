// kakusan: Stable Diffusion text-to-image in C++ — the library API.
//
//   #include <kakusan/pipeline.h>
//
//   kakusan::LoadOptions load;                       // dtype, VAE swap, scheduler, threads ...
//   load.scheduler = "DPMSolverMultistepScheduler";  // XScheduler.from_config(pipe.scheduler.config)
//   auto pipe = kakusan::StableDiffusionPipeline::load("runwayml/stable-diffusion-v1-5", load);
//
//   kakusan::GenerateParams params;                  // diffusers' __call__ names and defaults
//   params.prompt = {"portrait photo of a old warrior chief"};
//   params.num_inference_steps = 20;
//   params.seeds = {1};                              // generator=torch.Generator("cpu").manual_seed(1)
//   kakusan::GenerateResult out = pipe.generate(params);
//   out.images[0];                                   // RGB8; also out.image_tensor and out.latents
//
// Load once, generate many times (a pipeline is not safe to use from two threads at once). Errors are
// thrown as std::runtime_error (kakusan::Error) whose message names the problem — the file, tensor or
// parameter — and what was expected; a cancelled run throws kakusan::Cancelled.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "kakusan/image.h"

namespace kakusan {

// Thrown by generate() when the step callback asked to stop.
class Cancelled : public std::runtime_error {
 public:
  Cancelled() : std::runtime_error("generation cancelled") {}
};

enum class WeightDType { Auto, F32, F16, BF16 };

// The long phases of a run, reported to a ProgressCallback.
enum class Phase { Loading, Encoding, Denoising, Decoding };
const char* phase_name(Phase phase);

struct Progress {
  Phase phase = Phase::Loading;
  int done = 0;   // units finished: components loaded, text-encoder batches, steps, VAE decodes
  int total = 0;
  std::string_view item;  // what the unit was ("unet", "vae", ...), may be empty
};
// Called when a phase starts (done == 0) and after every unit of it.
using ProgressCallback = std::function<void(const Progress&)>;

// Where the weights live between uses, as diffusers' offload levers. On a device backend (CUDA): None keeps
// every component's weights on the device from load on (pipe.to("cuda")); Model keeps them in host memory and
// uploads each component when its phase starts, freeing it when the phase ends, so only the running component
// is on the device (enable_model_cpu_offload); Sequential does the same for the text encoder and the VAE and
// uploads the UNet block by block, one block on the device at a time (enable_sequential_cpu_offload's idea at
// block granularity). The results are identical; the uploads cost time every generate(). On a host backend
// the weights already are host memory: Model is what the CPU always does (a component's file pages dropped
// after its phase) and Sequential is GenerateParams::stream_unet_weights.
enum class Offload { None, Model, Sequential };
// "none", "model", "sequential" (the CLI's --offload and the C API's spelling); another name is an Error.
Offload offload_from_name(std::string_view name);
const char* offload_name(Offload offload);

struct LoadOptions {
  // Where the models run, as diffusers' pipe.to(device): "cpu" (the default), "reference" (plain loops, for
  // checking), "cuda" / "cuda:N" where the CUDA backend is built in. Weights go to the device at load.
  std::string device = "cpu";
  // Auto: keep what the files hold. F16/BF16 keep the weights in half precision in memory (and prefer the
  // `fp16` variant files when they exist and no variant is given).
  WeightDType dtype = WeightDType::Auto;
  // diffusers' `variant` ("fp16" reads diffusion_pytorch_model.fp16.safetensors); empty = default files.
  std::string variant;
  // A VAE folder (or model id) to use instead of the model's own (the tutorial's sd-vae-ft-mse swap).
  std::optional<std::string> vae;
  // For a single-file checkpoint (the model given as a .safetensors file): a diffusers folder or hub id whose
  // configs (and tokenizer) are used instead of the built-in ones of the detected type (from_single_file's
  // `config`), and a tokenizer folder (else found as diffusers would offline; see `kakusan inspect FILE`).
  std::optional<std::string> config;
  std::optional<std::string> tokenizer;
  // LoRA files fused into the UNet and text encoder (pipe.load_lora_weights(file); several add up as
  // set_adapters(names, adapter_weights=scales)): kohya/A1111, PEFT or diffusers format. Only the touched
  // weights get merged copies, in the model's dtype.
  struct Lora {
    std::string file;
    float scale = 1.0f;
  };
  std::vector<Lora> loras;
  // A1111's prompt tags `<lora:NAME>` / `<lora:NAME:WEIGHT>` (weight 1.0 when absent) name NAME.safetensors in
  // this folder; each generation adds its prompt's tags to `loras` (re-merging only the weights the change
  // touches). Tags are always taken out of the prompt text; without a folder a tag is an error.
  std::optional<std::filesystem::path> lora_dir;
  // Textual-inversion embeddings (pipe.load_textual_inversion(file, token=token)); the token defaults to the
  // file's own ({token: vectors}) or, for A1111's emb_params, the file's stem.
  struct Embedding {
    std::string file;
    std::optional<std::string> token;
  };
  std::vector<Embedding> embeddings;
  // XScheduler.from_config(pipe.scheduler.config): a diffusers class name or an alias ("euler_a",
  // "DPM++ 2M Karras"); empty keeps the model's scheduler. Options are key=value config overrides typed by
  // the config ("use_karras_sigmas" -> "true"). Checked before any weights are read.
  std::string scheduler;
  std::map<std::string, std::string> scheduler_options;
  int num_threads = 0;  // 0 = all cores
  ProgressCallback progress;
  Offload offload = Offload::None;  // see Offload; the memory planner may raise it for a run (MemoryPolicy::Auto)
};

// Attention memory lever, as diffusers' enable_attention_slicing / memory-efficient attention. Every mode
// gives the same numbers (to float rounding).
struct AttentionOptions {
  enum class Mode { Auto, Full, Sliced, Flash } mode = Mode::Auto;
  int slice_size = 0;  // Sliced: (batch x head) slices computed at a time; 0 = one at a time
};

enum class OutputType {
  Image,   // decode with the VAE: images, image_tensor and latents are filled ("pil" / "np")
  Latent,  // output_type="latent": skip the VAE, only latents
};

// What a step callback sees (diffusers' callback_on_step_end).
struct StepInfo {
  int step = 0;          // 0-based index of the denoising step just finished
  int num_steps = 0;     // number of UNet steps (len(scheduler.timesteps))
  double timestep = 0;
  double seconds = 0;    // wall time of this step
  const float* latents = nullptr;       // latents after this step, [B, 4, h, w]
  std::vector<int64_t> latents_shape;
};

// A named intermediate tensor ("prompt_embeds", "init_noise", "timesteps", "unet_input_step0",
// "unet_output_step<i>", "latents_after_step<i>"), for locating a mismatch against a reference.
struct NamedTensor {
  std::string_view name;
  const float* data = nullptr;
  std::vector<int64_t> shape;
};

// How prompt text is read. Diffusers: plain text, cut at the text encoder's 77 tokens (with a warning), as
// StableDiffusionPipeline. A1111: AUTOMATIC1111's syntax as diffusers' community lpw_stable_diffusion reads it:
// `(word)`, `[word]`, `(word:1.3)` weights and prompts up to 3 x 75 tokens encoded chunk by chunk.
enum class PromptSyntax { Diffusers, A1111 };

struct GenerateParams {
  // The batch: one entry per prompt. `<lora:NAME:W>` tags are taken out of the text and fused for this call
  // (LoadOptions::lora_dir; every prompt of a batch must carry the same tags; negative prompts' are dropped).
  std::vector<std::string> prompt;
  // Empty ("" as the unconditional prompt), one for every prompt, or one per prompt. Ignored without CFG.
  std::vector<std::string> negative_prompt;
  int height = 0;                             // 0 = unet.sample_size * vae_scale_factor (512 for SD1.5)
  int width = 0;                              // multiples of 8
  int num_inference_steps = 50;
  double guidance_scale = 7.5;                // classifier-free guidance is on iff > 1
  double guidance_rescale = 0.0;              // rescale_noise_cfg factor (0 = off)
  int num_images_per_prompt = 1;
  double eta = 0.0;                           // DDIM's eta; ignored by schedulers without one
  // The generator(s), as diffusers' `generator`:
  //   empty:    one generator with a random seed (reported in GenerateResult::seeds);
  //   one seed: ONE generator shared by all images (torch.Generator().manual_seed(s)): a single randn of
  //             shape (B, 4, h, w), and stochastic schedulers draw their noise from it;
  //   N seeds:  one generator per image, N == number of images ([Generator().manual_seed(s) for s in seeds]):
  //             image i draws its (1, 4, h, w) noise, and its scheduler noise, from generator i.
  std::vector<uint64_t> seeds;
  // Advanced: a generator list whose entries may be the same object (diffusers' `[g] * 4`). When given, it
  // has one entry per image: image i uses generator seeds[generator_index[i]].
  std::vector<int> generator_index;
  // The generators' kind, as torch.Generator(device): "cpu" (default) or "cuda", torch's CUDA generator
  // (Philox) reproduced on the CPU, so the seeds of code written for a GPU give the same noise on any device.
  // With LoadOptions::dtype F16 its draws are rounded to half, as diffusers' fp16 pipelines draw them. Draws
  // larger than one launch wave of the GPU (e.g. 8x4x64x64 from one generator) depend on the GPU's
  // multiprocessor count and threads per multiprocessor; the default is an NVIDIA T4 (40, 1024).
  std::string generator_device = "cpu";
  int cuda_sm_count = 40;
  int cuda_max_threads_per_sm = 1024;
  // Optional initial noise [B, 4, h, w] (diffusers' `latents`), before scaling by init_noise_sigma (with
  // `image`: the noise added to the image latents).
  std::vector<float> latents;
  // Image-to-image (StableDiffusionImg2ImgPipeline): the input picture, one for the whole batch or one per
  // generated image; empty = text-to-image. Its size, rounded down to a multiple of 8, is the output size
  // unless height / width are given (then it is resized to them, Lanczos as PIL). RGB; read_image() loads a PNG.
  std::vector<Image> image;
  // Inpainting (StableDiffusionInpaintPipeline): the mask(s), white = repaint (PIL's convert("L") >= 128),
  // each the size of the images; one, or one per image. Needs `image`. A UNet with 9 input channels (an
  // inpainting UNet) sees the mask and the masked image's latents; an ordinary UNet has the known region put
  // back after every step.
  std::vector<Image> mask_image;
  // How much of the image is replaced by noise, in [0, 1]: int(num_inference_steps * strength) steps run.
  // Unset: diffusers' defaults, 0.8 for image-to-image and 1.0 for inpainting.
  std::optional<double> strength;
  std::optional<int> clip_skip;               // 1 = the pre-final CLIP layer
  PromptSyntax prompt_syntax = PromptSyntax::Diffusers;
  AttentionOptions attention;
  bool vae_slicing = false;                   // decode one image at a time (less memory)
  bool vae_tiling = false;                    // decode large images as overlapping tiles (diffusers' enable_vae_tiling)
  int vae_tile_size = 0;                      // tile side in pixels for vae_tiling; 0 = the VAE's sample_size
  // Low-memory mode's lever: the UNet's weights are read from the mapped file block by block and their pages
  // dropped after each block, so one block's weights are resident at a time (the page cache keeps the file;
  // each step faults them back in). Like diffusers' enable_sequential_cpu_offload; the results are identical.
  // On a device backend it means Offload::Sequential for this run.
  bool stream_unet_weights = false;
  // CUDA graphs (the tutorial's torch.compile row): on a device backend the UNet step is captured once (its
  // second step, after a warm-up step) and replayed for the rest of the loop, one launch instead of ~1000.
  // Same kernels in the same order: the images are identical. Not with stream_unet_weights (host work inside
  // the step); the host backends ignore it.
  bool cuda_graphs = true;
  // The memory planner: before any work, the run's peak memory is estimated (weights in their dtype +
  // activations for this batch, size and attention mode) and compared with `max_memory` (bytes; 0 = the
  // machine's available memory). Auto: when it will not fit, turn on the memory levers (flash attention
  // instead of full/sliced, VAE slicing, VAE tiling, streamed UNet weights — on a device backend model then
  // sequential offload instead —, 256-pixel VAE tiles) until it does, with a warning, else refuse; Refuse:
  // throw kakusan::Error with the estimate and what would fit; Off: no check.
  enum class MemoryPolicy { Auto, Refuse, Off } memory_policy = MemoryPolicy::Auto;
  int64_t max_memory = 0;
  OutputType output_type = OutputType::Image;
  // After every step; return false to cancel (generate() then throws kakusan::Cancelled).
  std::function<bool(const StepInfo&)> callback_on_step_end;
  ProgressCallback progress;                  // encoding, denoising and decoding phases
  std::function<void(const NamedTensor&)> inspect;
};

struct GenerateResult {
  std::vector<Image> images;             // RGB8, round(x * 255); empty for OutputType::Latent
  std::vector<float> latents;            // [B, 4, h, w] float32 (output_type="latent"), row-major
  std::vector<int64_t> latents_shape;
  std::vector<float> image_tensor;       // [B, H, W, 3] in [0, 1] (output_type="np")
  std::vector<int64_t> image_shape;
  std::vector<uint64_t> seeds;           // the seed of each image's generator
  std::vector<float> init_noise;         // [B, 4, h, w] (latents_shape): the randn draw (or the given
                                         // latents) before init_noise_sigma scaling
  std::vector<std::string> warnings;     // e.g. the truncated part of a long prompt
  // The memory planner's estimate of this run's peak (bytes, 0 with MemoryPolicy::Off) and the activation
  // activation arena peaks and kernel scratch measured while running (bytes; a phase that did not run
  // reports 0).
  struct Memory {
    int64_t estimated_peak = 0;
    int64_t estimated_unet_arena = 0, estimated_vae_arena = 0;
    int64_t text_encoder_arena = 0, unet_arena = 0, vae_arena = 0;
    int64_t text_encoder_scratch = 0, unet_scratch = 0, vae_scratch = 0;
    // Image-to-image / inpainting: the VAE encoder's arena, estimated and measured (its largest encode).
    int64_t estimated_vae_encoder_arena = 0, vae_encoder_arena = 0;
  } memory;
};

// The checks that need no model (diffusers' check_inputs plus ours): at least one prompt, steps >= 1,
// finite guidance, sizes that are multiples of 8 within limits, seed count, negative prompt count.
// generate() runs them too; the CLI runs them before loading anything.
void check_inputs(const GenerateParams& params);

// The VAE tile side (pixels) of low-memory mode: decoding a 512-pixel tile takes about 1.2 GB of activations,
// a 256-pixel tile a quarter of that.
inline constexpr int kLowMemoryVaeTile = 256;

// `strength` as generate() uses it: the given value, else diffusers' default for the pipeline (0.8 for
// image-to-image, 1.0 for inpainting).
double effective_strength(const GenerateParams& params);

// Largest height or width accepted, and largest number of images in one call.
inline constexpr int kMaxImageSide = 8192;
inline constexpr int kMaxImagesPerCall = 256;

class StableDiffusionPipeline {
 public:
  // `model` is a diffusers folder or a model id resolved offline through the Hugging Face cache.
  static StableDiffusionPipeline load(const std::string& model, const LoadOptions& options = {});
  ~StableDiffusionPipeline();
  StableDiffusionPipeline(StableDiffusionPipeline&&) noexcept;
  StableDiffusionPipeline& operator=(StableDiffusionPipeline&&) noexcept;

  // Replaces the scheduler, as pipe.scheduler = XScheduler.from_config(pipe.scheduler.config).
  void set_scheduler(const std::string& name_or_alias, const std::map<std::string, std::string>& options = {});
  // The diffusers class name of the current scheduler ("PNDMScheduler").
  std::string scheduler_name() const;

  GenerateResult generate(const GenerateParams& params);

  // The model's default image size (unet.sample_size * 2^(len(vae.block_out_channels) - 1)).
  int default_height() const;
  int default_width() const;
  // The folder the model was read from.
  std::filesystem::path model_path() const;

  struct Impl;

 private:
  explicit StableDiffusionPipeline(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace kakusan
