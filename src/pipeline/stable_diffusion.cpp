// StableDiffusionPipeline: diffusers' pipeline_stable_diffusion.py, __call__ in its numbered steps.
//
// Loading reads the model folder once (scheduler first, so a bad scheduler name fails before any weights
// are mapped); generate() then runs: 0. defaults and checks, 1. encode the prompt (with CFG), 2. timesteps,
// 3. initial latents, 4. the denoising loop, 5. VAE decode and postprocessing.
#include <chrono>
#include <cmath>
#include <cstring>
#include <optional>
#include <random>

#include "backend/backend.h"
#include "core/arena.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "io/image.h"
#include "io/model_folder.h"
#include "kakusan/pipeline.h"
#include "models/autoencoder_kl.h"
#include "models/unet_2d_condition.h"
#include "nn/weights.h"
#include "pipeline/generators.h"
#include "pipeline/guidance.h"
#include "pipeline/postprocess.h"
#include "pipeline/prompt_encoder.h"
#include "schedulers/scheduler.h"

namespace kakusan {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// The dtype the matrices of a checkpoint are stored in (what WeightDType::Auto keeps).
DType stored_dtype(const WeightStore& store) {
  for (const SafetensorsFile& file : store.files())
    for (const SafetensorsFile::Entry& entry : file.entries())
      if (entry.shape.rank() >= 2 && is_float(entry.dtype)) return entry.dtype;
  return DType::F32;
}

DType weight_dtype_for(WeightDType requested, const WeightStore& store) {
  switch (requested) {
    case WeightDType::Auto: return stored_dtype(store);
    case WeightDType::F32: return DType::F32;
    case WeightDType::F16: return DType::F16;
    case WeightDType::BF16: return DType::BF16;
  }
  return DType::F32;
}

// A model component (UNet, VAE, text encoder) from its folder: config, then the weight files of the
// requested variant (default files when the folder has no such variant), matrices kept in the requested
// dtype (Auto: as stored). `library` names the file family ("diffusers" or "transformers").
template <typename Model, typename Config>
Model load_component(const std::filesystem::path& dir, const std::string& variant, WeightDType dtype,
                     const char* class_name, const char* library = "diffusers") {
  Model model(Config::parse(JsonConfig::load(dir / "config.json")));
  const WeightStore store = WeightStore::open(find_weight_files(dir, variant, library).files);
  load_weights(model, store, weight_dtype_for(dtype, store), class_name);
  return model;
}

// The folder of a VAE given on its own: a VAE folder (config.json at its root, like
// stabilityai/sd-vae-ft-mse) or a whole model folder whose vae/ is used.
std::filesystem::path resolve_vae_dir(const std::string& path_or_id) {
  const std::filesystem::path root = resolve_model_path(path_or_id);
  if (std::filesystem::is_regular_file(root / "config.json")) return root;
  if (std::filesystem::is_regular_file(root / "vae" / "config.json")) return root / "vae";
  fail("VAE '", path_or_id, "': ", root.string(), " has neither config.json nor vae/config.json");
}

AttentionParams attention_params(const AttentionOptions& options) {
  AttentionParams params;
  switch (options.mode) {
    case AttentionOptions::Mode::Auto: params.strategy = AttentionStrategy::Auto; break;
    case AttentionOptions::Mode::Full: params.strategy = AttentionStrategy::Full; break;
    case AttentionOptions::Mode::Sliced: params.strategy = AttentionStrategy::Sliced; break;
    case AttentionOptions::Mode::Flash: params.strategy = AttentionStrategy::Flash; break;
  }
  params.slice_size = options.slice_size;
  return params;
}

std::vector<int64_t> dims_of(const Shape& shape) { return std::vector<int64_t>(shape.begin(), shape.end()); }

void report(const ProgressCallback& progress, Phase phase, int done, int total, std::string_view item = {}) {
  if (progress) progress(Progress{phase, done, total, item});
}

// cat([x, x]) on dimension 0.
Tensor duplicate_batch(const Tensor& x) {
  Shape shape = x.shape();
  shape[0] *= 2;
  Tensor out = Tensor::empty(shape);
  std::memcpy(out.f32(), x.f32(), x.nbytes());
  std::memcpy(out.f32() + x.numel(), x.f32(), x.nbytes());
  return out;
}

uint64_t random_seed() {
  std::random_device device;
  return (uint64_t(device()) << 32 | device()) & ((uint64_t(1) << 53) - 1);  // exact in a double, like Python ints
}

}  // namespace

struct StableDiffusionPipeline::Impl {
  std::filesystem::path root;
  std::optional<ModelFolder> folder;
  JsonConfig scheduler_source;  // the model's scheduler_config.json
  std::string scheduler_spec;   // class name or alias, re-made fresh for every generate()
  std::map<std::string, std::string> scheduler_options;
  std::string scheduler_class;
  std::optional<PromptEncoder> prompt_encoder;
  std::optional<UNet2DConditionModel> unet;
  std::optional<AutoencoderKL> vae;
  Arena arena;

  std::unique_ptr<Scheduler> make_configured_scheduler() const {
    return make_scheduler(scheduler_spec, scheduler_source, scheduler_options);
  }

  void set_scheduler(const std::string& spec, const std::map<std::string, std::string>& options) {
    std::string previous_spec = std::exchange(scheduler_spec, spec);
    auto previous_options = std::exchange(scheduler_options, options);
    try {
      scheduler_class = make_configured_scheduler()->class_name();
    } catch (...) {
      scheduler_spec = std::move(previous_spec);
      scheduler_options = std::move(previous_options);
      throw;
    }
  }

  int vae_scale_factor() const { return vae->config().downscale_factor(); }
  int default_size() const { return unet->config().sample_size * vae_scale_factor(); }

  void load(const std::string& model, const LoadOptions& options);
  GenerateResult generate(const GenerateParams& params);
};

void StableDiffusionPipeline::Impl::load(const std::string& model, const LoadOptions& options) {
  // Everything cheap and checkable first: folder, components, scheduler, VAE folder.
  root = resolve_model_path(model);
  folder.emplace(ModelFolder::open(root));
  for (const char* component : {"unet", "text_encoder", "tokenizer", "scheduler"})
    KK_CHECK(folder->has_component(component), root.string(), "/model_index.json: no \"", component,
             "\" component (is this a Stable Diffusion model folder?)");
  KK_CHECK(options.vae || folder->has_component("vae"), root.string(), "/model_index.json: no \"vae\" component");
  scheduler_source = folder->load_config("scheduler");
  set_scheduler(options.scheduler.empty() ? folder->component("scheduler").class_name : options.scheduler,
                options.scheduler_options);
  const std::filesystem::path vae_dir = options.vae ? resolve_vae_dir(*options.vae) : folder->component_dir("vae");
  if (options.num_threads > 0) set_num_threads(options.num_threads);

  std::string variant = options.variant;
  if (variant.empty() && options.dtype == WeightDType::F16) variant = "fp16";
  const int total = 4;
  report(options.progress, Phase::Loading, 0, total);
  ClipTokenizer tokenizer = ClipTokenizer::load(folder->component_dir("tokenizer"));
  report(options.progress, Phase::Loading, 1, total, "tokenizer");
  ClipTextModel text_encoder = load_component<ClipTextModel, ClipTextConfig>(
      folder->component_dir("text_encoder"), variant, options.dtype, "CLIPTextModel", "transformers");
  prompt_encoder.emplace(std::move(tokenizer), std::move(text_encoder));
  report(options.progress, Phase::Loading, 2, total, "text_encoder");
  unet.emplace(load_component<UNet2DConditionModel, UNet2DConditionConfig>(folder->component_dir("unet"), variant,
                                                                          options.dtype, "UNet2DConditionModel"));
  report(options.progress, Phase::Loading, 3, total, "unet");
  vae.emplace(load_component<AutoencoderKL, AutoencoderKLConfig>(vae_dir, variant, options.dtype, "AutoencoderKL"));
  report(options.progress, Phase::Loading, 4, total, "vae");
  KK_CHECK(vae->config().latent_channels == unet->config().in_channels, "the VAE (", vae_dir.string(), ") has ",
           vae->config().latent_channels, " latent channels but the UNet expects ", unet->config().in_channels);
}

GenerateResult StableDiffusionPipeline::Impl::generate(const GenerateParams& p) {
  // 0. Default height and width to unet.sample_size * vae_scale_factor; check inputs.
  check_inputs(p);
  const int height = p.height ? p.height : default_size();
  const int width = p.width ? p.width : default_size();
  const int num_images = int(p.prompt.size()) * p.num_images_per_prompt;
  const int64_t latent_channels = unet->config().in_channels;
  const Shape latents_shape{num_images, latent_channels, height / vae_scale_factor(), width / vae_scale_factor()};
  KK_CHECK(p.latents.empty() || int64_t(p.latents.size()) == latents_shape.numel(), "`latents` has ",
           p.latents.size(), " values but the batch needs ", latents_shape.str(), " = ", latents_shape.numel());
  const int text_layers = prompt_encoder->text_encoder().config().num_hidden_layers;
  KK_CHECK(!p.clip_skip || *p.clip_skip <= text_layers, "`clip_skip` ", p.clip_skip.value_or(0),
           " is more than the text encoder's ", text_layers, " layers");
  const bool do_cfg = p.guidance_scale > 1.0;
  auto inspect = [&](std::string_view name, const TensorView& t) {
    if (p.inspect) p.inspect(NamedTensor{name, t.f32(), dims_of(t.shape)});
  };

  Context ctx{cpu_backend(), arena, attention_params(p.attention)};
  GenerateResult result;

  // 1. Encode the input prompt: [uncond..., cond...] with classifier-free guidance.
  PromptBatch batch{p.prompt, p.negative_prompt, p.num_images_per_prompt, do_cfg, p.clip_skip};
  const int encode_total = PromptEncoder::num_batches(batch);
  int encoded = 0;
  report(p.progress, Phase::Encoding, 0, encode_total);
  EncodedPrompts prompts = prompt_encoder->encode(ctx, batch, [&] {
    report(p.progress, Phase::Encoding, ++encoded, encode_total);
  });
  result.warnings = std::move(prompts.warnings);
  inspect("prompt_embeds", prompts.embeds);

  // 2. Prepare timesteps.
  std::unique_ptr<Scheduler> scheduler = make_configured_scheduler();
  scheduler->set_eta(p.eta);
  scheduler->set_timesteps(p.num_inference_steps);
  const std::vector<double>& timesteps = scheduler->timesteps();
  if (p.inspect) {
    Tensor t = Tensor::empty({int64_t(timesteps.size())});
    for (size_t i = 0; i < timesteps.size(); ++i) t.f32()[i] = float(timesteps[i]);
    inspect("timesteps", t);
  }

  // 3. Prepare latent variables: randn from the generator(s), scaled by the scheduler's init_noise_sigma.
  GeneratorSet generators(p.seeds, p.generator_index, num_images, p.seeds.empty() ? random_seed() : 0);
  result.seeds = generators.image_seeds();
  Tensor latents;
  if (p.latents.empty()) {
    latents = generators.randn(latents_shape);
  } else {
    latents = Tensor::empty(latents_shape);
    std::memcpy(latents.f32(), p.latents.data(), latents.nbytes());
  }
  inspect("init_noise", latents);
  const float init_noise_sigma = float(scheduler->init_noise_sigma());
  for (int64_t i = 0; i < latents.numel(); ++i) latents.f32()[i] *= init_noise_sigma;

  // 4. Denoising loop.
  const int num_steps = int(timesteps.size());
  report(p.progress, Phase::Denoising, 0, num_steps);
  const int64_t unet_batch = do_cfg ? 2 * num_images : num_images;
  Tensor t = Tensor::empty({1});
  Tensor noise_pred = Tensor::empty({unet_batch, unet->config().out_channels, latents_shape[2], latents_shape[3]});
  for (int i = 0; i < num_steps; ++i) {
    const auto step_start = Clock::now();
    // Expand the latents for classifier-free guidance, and scale them for this step.
    Tensor model_input = do_cfg ? duplicate_batch(latents) : latents.clone();
    scheduler->scale_model_input(model_input, size_t(i));
    if (i == 0) inspect("unet_input_step0", model_input);
    // Predict the noise residual; t (the same for the whole batch) as float32, as the UNet's time_proj sees it.
    t.f32()[0] = float(timesteps[size_t(i)]);
    unet->forward(ctx, model_input, t, prompts.embeds, noise_pred);
    if (p.inspect) inspect(str_cat("unet_output_step", i), noise_pred);
    // Guidance: uncond + g * (cond - uncond), then optionally rescaled (guidance_rescale).
    Tensor guided;
    if (do_cfg) {
      guided = classifier_free_guidance(noise_pred, float(p.guidance_scale));
      if (p.guidance_rescale > 0.0)
        rescale_noise_cfg(guided, noise_pred.view().slice0(num_images, unet_batch), float(p.guidance_rescale));
    }
    // x_t -> x_t-1, drawing any noise from the pipeline's generator(s).
    latents = generators.per_image()
                  ? scheduler->step(do_cfg ? guided : noise_pred, size_t(i), latents,
                                    std::span<Generator* const>(generators.image_generators()))
                  : scheduler->step(do_cfg ? guided : noise_pred, size_t(i), latents, generators.shared());
    if (p.inspect) inspect(str_cat("latents_after_step", i), latents);
    if (p.callback_on_step_end) {
      StepInfo info{i, num_steps, timesteps[size_t(i)], seconds_since(step_start), latents.f32(),
                    dims_of(latents.shape())};
      if (!p.callback_on_step_end(info)) throw Cancelled();
    }
    report(p.progress, Phase::Denoising, i + 1, num_steps);
  }
  result.latents.assign(latents.f32(), latents.f32() + latents.numel());
  result.latents_shape = dims_of(latents.shape());
  if (p.output_type == OutputType::Latent) return result;

  // 5. Decode: vae.decode(latents / scaling_factor), then (x / 2 + 0.5) clamped, NHWC.
  report(p.progress, Phase::Decoding, 0, 1);
  Tensor scaled = latents.clone();
  const float scaling_factor = vae->config().scaling_factor;
  for (int64_t i = 0; i < scaled.numel(); ++i) scaled.f32()[i] /= scaling_factor;
  Tensor images;
  {
    VaeMemoryOptions memory;
    memory.slicing = p.vae_slicing;
    memory.tiling = p.vae_tiling;
    const Tensor decoded = vae->decode(ctx, scaled, memory);
    images = denormalize_to_nhwc(decoded);
  }
  report(p.progress, Phase::Decoding, 1, 1);
  result.images = images_from_nhwc(images);
  result.image_tensor.assign(images.f32(), images.f32() + images.numel());
  result.image_shape = dims_of(images.shape());
  return result;
}

StableDiffusionPipeline::StableDiffusionPipeline(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
StableDiffusionPipeline::~StableDiffusionPipeline() = default;
StableDiffusionPipeline::StableDiffusionPipeline(StableDiffusionPipeline&&) noexcept = default;
StableDiffusionPipeline& StableDiffusionPipeline::operator=(StableDiffusionPipeline&&) noexcept = default;

StableDiffusionPipeline StableDiffusionPipeline::load(const std::string& model, const LoadOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->load(model, options);
  return StableDiffusionPipeline(std::move(impl));
}

void StableDiffusionPipeline::set_scheduler(const std::string& name_or_alias,
                                            const std::map<std::string, std::string>& options) {
  impl_->set_scheduler(name_or_alias, options);
}

std::string StableDiffusionPipeline::scheduler_name() const { return impl_->scheduler_class; }
GenerateResult StableDiffusionPipeline::generate(const GenerateParams& params) { return impl_->generate(params); }
int StableDiffusionPipeline::default_height() const { return impl_->default_size(); }
int StableDiffusionPipeline::default_width() const { return impl_->default_size(); }
std::filesystem::path StableDiffusionPipeline::model_path() const { return impl_->root; }

}  // namespace kakusan
