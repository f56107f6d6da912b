// StableDiffusionPipeline: diffusers' pipeline_stable_diffusion.py, __call__ composed of the shared steps.
//
// Loading reads the model folder once (scheduler first, so a bad scheduler name fails before any weights
// are mapped); generate() then runs: 0. defaults and checks (and the memory plan), 1. encode_prompt,
// 2. prepare_timesteps, 3. prepare_latents (with an image: prepare_image_latents, as
// StableDiffusionImg2ImgPipeline / StableDiffusionInpaintPipeline), 4. denoise, 5. decode. The steps live in
// files of their own so that img2img, inpainting and SDXL pipelines compose them too.
#include <optional>
#include <random>

#include "backend/backend.h"
#include "backend/registry.h"
#include "backend/staged_tensor.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "io/image.h"
#include "io/model_folder.h"
#include "kakusan/pipeline.h"
#include "models/autoencoder.h"
#include "models/model_folder_load.h"
#include "models/unet_2d_condition.h"
#include "nn/context.h"
#include "nn/device_weights.h"
#include "pipeline/decode.h"
#include "pipeline/denoise.h"
#include "pipeline/encode_prompt.h"
#include "pipeline/generators.h"
#include "pipeline/inpaint.h"
#include "pipeline/lora_set.h"
#include "pipeline/lora_tags.h"
#include "pipeline/memory_planner.h"
#include "pipeline/model_sources.h"
#include "pipeline/prepare_image.h"
#include "pipeline/prepare_image_latents.h"
#include "pipeline/prepare_latents.h"
#include "pipeline/prepare_timesteps.h"
#include "pipeline/prompt_encoder.h"
#include "pipeline/run_options.h"
#include "pipeline/step_graph.h"
#include "pipeline/textual_inversion.h"
#include "pipeline/weight_residency.h"
#include "schedulers/scheduler.h"

namespace kakusan {

namespace {

// A component through the one weight walk, its matrices in `dtype`; its mapped files join `resident`, whose
// pages are then dropped (loading touched only the headers and converted tensors; nothing stays resident).
template <typename Model, typename Config>
Model load_component(const ComponentSource& source, DType dtype, const char* class_name, ResidentWeights& resident) {
  Model model = load_model_from<Model, Config>(source.config, *source.weights, dtype, class_name);
  resident.add(*source.weights);
  resident.drop_pages();
  return model;
}

// diffusers' StableDiffusionPipeline.__init__ deprecation fix-ups: an old scheduler config with
// steps_offset != 1 or clip_sample true is used with steps_offset = 1 and clip_sample = false.
JsonConfig fix_up_scheduler_config(const JsonConfig& config, std::vector<std::string>& warnings) {
  nlohmann::json json = config.json();
  if (config.has("steps_offset") && json["steps_offset"] != 1) {
    warnings.push_back(str_cat(config.source(), ": steps_offset is ", json["steps_offset"].dump(),
                               " (outdated); using 1 as diffusers does"));
    json["steps_offset"] = 1;
  }
  if (config.has("clip_sample") && json["clip_sample"] == true) {
    warnings.push_back(str_cat(config.source(), ": clip_sample is true (outdated); using false as diffusers does"));
    json["clip_sample"] = false;
  }
  return JsonConfig(std::move(json), config.source());
}

uint64_t random_seed() {
  std::random_device device;
  return (uint64_t(device()) << 32 | device()) & ((uint64_t(1) << 53) - 1);  // exact in a double, like Python ints
}

}  // namespace

struct StableDiffusionPipeline::Impl {
  // The backend every phase runs on: the one seam where device placement plugs in (set by load()).
  Backend* backend = nullptr;
  std::filesystem::path root;
  JsonConfig scheduler_source;  // the model's scheduler_config.json
  std::string scheduler_spec;   // class name or alias, re-made fresh for every generate()
  std::map<std::string, std::string> scheduler_options;
  std::string scheduler_class;
  std::optional<PromptEncoder> prompt_encoder;
  std::optional<UNet2DConditionModel> unet;
  std::unique_ptr<Autoencoder> vae;  // AutoencoderKL or AutoencoderTiny, by the folder's config.json
  ResidentWeights text_encoder_weights, unet_weights, vae_weights;
  ComponentBytes component_bytes;  // set by load()
  ComponentDTypes dtypes;          // set by load(): the precision each phase's products take
  std::vector<std::string> load_warnings;  // reported with every generate()
  bool half_pipeline = false;              // loaded with dtype F16 (diffusers' torch_dtype=torch.float16)
  LoraSet loras;                           // the LoRAs fused now: --lora plus the last prompt's tags
  std::optional<std::filesystem::path> lora_dir;
  Offload offload = Offload::None;         // LoadOptions::offload; a run may raise it (the memory planner)
  // On a device backend, the components' device copies while runs keep all weights on the device (offload
  // None): made at load, given back for a run with offload and (the text encoder's and UNet's) before a LoRA
  // change, whose merged weights are bound on the host; made again by the next run without. Mapped host views
  // stay; owned copies (converted or merged) are freed and downloaded when given back. Declared after the
  // models: released first.
  struct Resident {
    explicit Resident(Backend& backend) : text_encoder(backend), unet(backend), vae(backend) {}
    DeviceWeights text_encoder, unet, vae;
  };
  std::optional<Resident> resident;

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

  MemoryPlanner memory_planner() const {
    return MemoryPlanner(*backend, prompt_encoder->text_encoder(), *unet, *vae, component_bytes, dtypes);
  }

  // Every component's weights on the device from now on (true: what is not up yet goes up), or in host memory
  // between phases (false).
  void keep_resident(bool yes) {
    if (!yes || backend->device().is_host()) {
      if (resident)  // converted or merged weights come back from the device (their host copies were dropped)
        for (DeviceWeights* w : {&resident->text_encoder, &resident->unet, &resident->vae}) w->release();
      resident.reset();
      return;
    }
    if (!resident) resident.emplace(*backend);
    const int64_t before = resident->text_encoder.bytes() + resident->unet.bytes() + resident->vae.bytes();
    try {
      resident->text_encoder.add_module(prompt_encoder->text_encoder());
      resident->unet.add_module(*unet);
      resident->vae.add_module(*vae);
    } catch (...) {  // out of device memory: nothing stays up, the error says what did not fit
      resident.reset();
      throw;
    }
    if (resident->text_encoder.bytes() + resident->unet.bytes() + resident->vae.bytes() == before) return;
    // The host keeps no second copy: mapped pages are dropped, owned copies freed (downloaded when given back).
    const auto owned = [this](const Tensor& t) {
      return !text_encoder_weights.contains(t.data()) && !unet_weights.contains(t.data()) &&
             !vae_weights.contains(t.data());
    };
    for (DeviceWeights* w : {&resident->text_encoder, &resident->unet, &resident->vae}) w->drop_host_copies(owned);
    for (const ResidentWeights* w : {&text_encoder_weights, &unet_weights, &vae_weights}) w->drop_pages();
  }

  // A UNet that takes cat([latents, mask, masked-image latents]) (runwayml/stable-diffusion-inpainting's 9).
  bool inpainting_unet() const { return unet->config().in_channels == 2 * int64_t(vae->latent_channels()) + 1; }
  int vae_scale_factor() const { return vae->downscale_factor(); }
  int default_size() const { return unet->config().sample_size * vae_scale_factor(); }

  void measure_weights() {
    component_bytes.text_encoder = weight_bytes(prompt_encoder->text_encoder());
    component_bytes.unet = weight_bytes(*unet);
    component_bytes.vae = weight_bytes(*vae);
    component_bytes.unet_streamed = block_by_block_bytes(*unet, &unet_weights);
    component_bytes.unet_blockwise = block_by_block_bytes(*unet, nullptr);
  }

  void load(const std::string& model, const LoadOptions& options);
  GenerateResult generate(const GenerateParams& params);
};

void StableDiffusionPipeline::Impl::load(const std::string& model, const LoadOptions& options) {
  // Everything cheap and checkable first: the device, configs, scheduler, file headers (a folder or a single
  // file).
  backend = &backend_for_device(options.device);
  ModelSources sources = open_model_sources(model, options);
  root = sources.root;
  scheduler_source = fix_up_scheduler_config(sources.scheduler_config, load_warnings);
  set_scheduler(options.scheduler.empty() ? sources.scheduler_class : options.scheduler, options.scheduler_options);
  const std::string& vae_dir = sources.vae_origin;
  if (options.num_threads > 0) set_num_threads(options.num_threads);
  offload = options.offload;

  half_pipeline = options.dtype == WeightDType::F16;
  dtypes = {matrix_dtype(options.dtype, *sources.text_encoder.weights),
            matrix_dtype(options.dtype, *sources.unet.weights), matrix_dtype(options.dtype, *sources.vae.weights)};
  const int total = 4;
  report_progress(options.progress, Phase::Loading, 0, total);
  ClipTokenizer tokenizer = ClipTokenizer::load(sources.tokenizer_dir);
  std::vector<TextualInversion> embeddings;
  for (const LoadOptions::Embedding& e : options.embeddings)
    embeddings.push_back(read_textual_inversion(e.file, e.token));
  auto expansions = add_textual_inversions(embeddings, tokenizer, sources.text_encoder);
  loras.prepare(sources, options);
  lora_dir = options.lora_dir;
  report_progress(options.progress, Phase::Loading, 1, total, "tokenizer");
  ClipTextModel text_encoder = load_component<ClipTextModel, ClipTextConfig>(sources.text_encoder, dtypes.text_encoder,
                                                                             "CLIPTextModel", text_encoder_weights);
  prompt_encoder.emplace(std::move(tokenizer), std::move(text_encoder), std::move(expansions));
  report_progress(options.progress, Phase::Loading, 2, total, "text_encoder");
  unet.emplace(load_component<UNet2DConditionModel, UNet2DConditionConfig>(sources.unet, dtypes.unet,
                                                                          "UNet2DConditionModel", unet_weights));
  report_progress(options.progress, Phase::Loading, 3, total, "unet");
  // AutoencoderKL or AutoencoderTiny, by the VAE config's _class_name.
  const WeightSource& vae_source = *sources.vae.weights;
  vae = load_autoencoder_from(sources.vae.config, vae_source, dtypes.vae);
  vae_weights.add(vae_source);
  vae_weights.drop_pages();
  measure_weights();
  keep_resident(offload == Offload::None);  // the weights go to a device at load, unless offloaded
  report_progress(options.progress, Phase::Loading, 4, total, "vae");
  // Text-to-image feeds the UNet the latents alone (the default model input), and steps with its prediction;
  // an inpainting UNet takes the mask and the masked image's latents too.
  const int64_t latent_channels = vae->latent_channels();
  try {
    if (!inpainting_unet()) check_default_model_input(unet->config().in_channels, latent_channels);
  } catch (const Error& e) {
    fail("the VAE (", vae_dir, ") and the UNet do not match: ", e.what());
  }
  KK_CHECK(unet->config().out_channels == latent_channels, "the UNet predicts ", unet->config().out_channels,
           " channels but the VAE (", vae_dir, ") has ", latent_channels, " latent channels");
}

GenerateResult StableDiffusionPipeline::Impl::generate(const GenerateParams& params) {
  Backend& run_on = *backend;
  // 0. Default height and width to unet.sample_size * vae_scale_factor; check inputs; plan the memory (the
  //    planner may turn levers on).
  check_inputs(params);
  GenerateParams p = params;
  // The prompt's <lora:NAME:W> tags come out of its text and, with the --lora files, make the LoRA set.
  PromptLoras tagged = take_lora_tags(p.prompt, p.negative_prompt, lora_dir);
  p.prompt = std::move(tagged.prompts);
  p.negative_prompt = std::move(tagged.negative_prompts);
  const std::vector<LoadOptions::Lora> wanted_loras = loras.with(tagged.loras);
  if (resident && !loras.is_current(wanted_loras)) {  // merged weights are bound on the host
    resident->text_encoder.release();
    resident->unet.release();
  }
  if (loras.use(wanted_loras, *unet, prompt_encoder->text_encoder())) measure_weights();
  // Image-to-image and inpainting take their size from the image (rounded down to a multiple of 8) unless
  // height / width are given.
  const bool from_image = !p.image.empty();
  const bool inpainting = !p.mask_image.empty();
  KK_CHECK(inpainting || !inpainting_unet(), "this UNet is an inpainting UNet (", unet->config().in_channels,
           " input channels: latents, mask and masked-image latents): give `image` and `mask_image`");
  const ImageSize size =
      from_image ? processed_size(p.image.front(), p.height, p.width, vae_scale_factor())
                 : ImageSize{p.height ? p.height : default_size(), p.width ? p.width : default_size()};
  const int height = size.height, width = size.width;
  const int num_images = int(p.prompt.size()) * p.num_images_per_prompt;
  const Shape latents_shape{num_images, vae->latent_channels(), height / vae_scale_factor(),
                            width / vae_scale_factor()};
  check_given_latents(latents_shape, p.latents);
  const int text_layers = prompt_encoder->text_encoder().config().num_hidden_layers;
  KK_CHECK(!p.clip_skip || *p.clip_skip <= text_layers, "`clip_skip` ", p.clip_skip.value_or(0),
           " is more than the text encoder's ", text_layers, " layers");
  const bool do_cfg = p.guidance_scale > 1.0;
  const int64_t unet_batch = do_cfg ? 2 * num_images : num_images;
  GenerateResult result;
  Offload run_offload = offload;
  const MemoryEstimate plan = memory_planner().plan(p, run_offload, latents_shape, unet_batch, result);
  // Where each phase finds its weights: a device holds them all (None) or uploads each phase's own, the UNet's
  // block by block for Sequential; on the host, Sequential is stream_unet_weights (the pages dropped per block).
  const bool on_device = !run_on.device().is_host();
  keep_resident(run_offload == Offload::None);
  p.stream_unet_weights = !on_device && run_offload == Offload::Sequential;  // on a device: blockwise uploads
  // A phase's component on the device while the phase runs (nothing to do when resident or on the host).
  auto phase_weights = [&run_on](auto& component) {
    DeviceWeights held(run_on);
    held.add_module(component);
    return held;
  };
  InspectTensor inspect;
  if (p.inspect)
    inspect = [&p, &run_on](std::string_view name, const TensorView& t) {
      if (t.on_host() && t.is_contiguous()) {
        p.inspect(NamedTensor{name, t.f32(), dims_of(t.shape)});
      } else {
        const Tensor host = host_copy(run_on, t);
        p.inspect(NamedTensor{name, host.f32(), dims_of(host.shape())});
      }
    };
  // Each phase's arena is reserved at the size the dry pass measured (one block: an arena left to grow opens
  // a new chunk whenever the last one is full, and earlier chunks freed by a scope are not reused until
  // reset(), so a growing arena held several times its peak) and freed when the phase ends, so the text
  // encoder's, UNet's and VAE's activations are never held at the same time (nor between calls).
  // Each phase's attention computes its products in its component's weight precision.
  const AttentionParams text_attention = attention_params(p.attention, dtypes.text_encoder, run_on);
  const AttentionParams unet_attention = attention_params(p.attention, dtypes.unet, run_on);
  const AttentionParams vae_attention = attention_params(p.attention, dtypes.vae, run_on);
  result.warnings.insert(result.warnings.begin(), load_warnings.begin(), load_warnings.end());
  result.warnings.insert(result.warnings.end(), tagged.warnings.begin(), tagged.warnings.end());

  // 1. Encode the input prompt: [uncond..., cond...] with classifier-free guidance.
  const PromptBatch batch{p.prompt, p.negative_prompt, p.num_images_per_prompt, do_cfg, p.clip_skip,
                          p.prompt_syntax == PromptSyntax::A1111};
  const EncodedPrompts prompts = [&] {
    const DeviceWeights held = phase_weights(prompt_encoder->text_encoder());
    return encode_prompt({run_on, text_attention, plan.encoding.arena}, *prompt_encoder, batch, p.progress,
                         result.memory.text_encoder_arena);
  }();
  end_phase(run_on, text_encoder_weights, result.memory.text_encoder_scratch);
  result.warnings.insert(result.warnings.end(), prompts.warnings.begin(), prompts.warnings.end());
  if (inspect) inspect("prompt_embeds", prompts.embeds);

  // 2. Prepare timesteps.
  std::unique_ptr<Scheduler> scheduler = make_configured_scheduler();
  prepare_timesteps(*scheduler, p.num_inference_steps, p.eta, inspect);

  // 3. Prepare latent variables: randn from the generator(s), scaled by the scheduler's init_noise_sigma.
  GeneratorSpec generator_spec;
  if (p.generator_device == "cuda")
    generator_spec = {GeneratorDevice::Cuda, {p.cuda_sm_count, p.cuda_max_threads_per_sm}, half_pipeline};
  GeneratorSet generators(p.seeds, p.generator_index, num_images, p.seeds.empty() ? random_seed() : 0,
                          generator_spec);
  result.seeds = generators.image_seeds();
  // init_noise (the draw before init_noise_sigma) is also kept for the result (--save-tensors).
  const InspectTensor keep_init_noise = [&](std::string_view name, const TensorView& t) {
    if (name == "init_noise") result.init_noise.assign(t.f32(), t.f32() + t.numel());
    if (inspect) inspect(name, t);
  };
  Tensor latents;
  ImageLatents from;  // image-to-image / inpainting inputs
  if (!from_image) {
    latents = prepare_latents(latents_shape, generators, p.latents, scheduler->init_noise_sigma(), keep_init_noise);
  } else {
    const ImageRequest request{p.image, p.mask_image, size, effective_strength(p), inpainting_unet(), p.latents};
    const DeviceWeights held = phase_weights(*vae);
    report_progress(p.progress, Phase::Encoding, 0, 1, "image");
    from = prepare_image_latents({run_on, vae_attention, plan.image_encoding.arena}, *vae, *scheduler, generators,
                                 request, latents_shape, p.num_inference_steps, vae_memory_options(p), keep_init_noise,
                                 result.memory.vae_encoder_arena);
    end_phase(run_on, vae_weights, result.memory.vae_scratch);
    report_progress(p.progress, Phase::Encoding, 1, 1, "image");
    latents = std::move(from.latents);
  }

  // 4. Denoising loop, the UNet's activations in one arena; low-memory mode drops the UNet's pages after
  //    every block.
  {
    Arena arena(run_on, size_t(plan.denoising.arena));
    Context ctx{run_on, arena, unet_attention};
    std::optional<BlockByBlockWeights<UNet2DConditionModel>> blockwise;
    std::optional<DeviceWeights> whole;
    if (on_device && run_offload == Offload::Sequential) {
      blockwise.emplace(run_on, *unet);
      ctx.after_block = [&] { blockwise->after_block(); };
    } else {
      whole.emplace(phase_weights(*unet));
    }
    if (p.stream_unet_weights) ctx.after_block = [&] { unet_weights.drop_pages(); };
    const NoiseModel unet_call = [&](const TensorView& input, const TensorView& t, const TensorView& noise_pred) {
      if (blockwise) blockwise->begin_pass();
      unet->forward(ctx, input, t, prompts.embeds, noise_pred);
    };
    // Replayed only while the arena and the prompt embeddings keep their places (step_graph.h); not when host
    // code runs within the step (streamed pages, blockwise uploads).
    StepGraph graph(run_on, unet_call, [&](StepKey& key) {
      key.push_back(arena.layout_hash());
      add_to_key(key, prompts.embeds);
    });
    const bool replay = p.cuda_graphs && !p.stream_unet_weights && !blockwise;
    const NoiseModel unet_model = replay ? NoiseModel(std::ref(graph)) : unet_call;
    DenoiseOptions denoising;
    denoising.classifier_free_guidance = do_cfg;
    denoising.guidance_scale = p.guidance_scale;
    denoising.guidance_rescale = p.guidance_rescale;
    denoising.callback_on_step_end = p.callback_on_step_end;
    denoising.progress = p.progress;
    denoising.inspect = inspect;
    denoising.first_step = from.first_step;
    MakeModelInput model_input;
    if (inpainting && inpainting_unet()) {
      denoising.model_input_channels = unet->config().in_channels;
      model_input = inpainting_model_input(*scheduler, do_cfg, from.mask, from.masked_image_latents);
    } else if (inpainting) {
      denoising.after_step = blend_known_region(*scheduler, from.image_latents, from.noise, from.mask);
    }
    latents = denoise(run_on, *scheduler, generators, std::move(latents), unet_model, denoising, model_input);
    result.memory.unet_arena = int64_t(arena.peak_bytes());
    if (!graph.gave_up().empty()) result.warnings.push_back("cuda graphs: the step ran eagerly: " + graph.gave_up());
  }
  end_phase(run_on, unet_weights, result.memory.unet_scratch);
  result.latents.assign(latents.f32(), latents.f32() + latents.numel());
  result.latents_shape = dims_of(latents.shape());
  if (p.output_type == OutputType::Latent) return result;

  // 5. Decode: vae.decode(latents / scaling_factor), then (x / 2 + 0.5) clamped, NHWC.
  const Tensor images = [&] {
    const DeviceWeights held = phase_weights(*vae);
    report_progress(p.progress, Phase::Decoding, 0, 1);
    return decode({run_on, vae_attention, plan.decoding.arena}, *vae, latents, vae_memory_options(p),
                  result.memory.vae_arena);
  }();
  end_phase(run_on, vae_weights, result.memory.vae_scratch);
  report_progress(p.progress, Phase::Decoding, 1, 1);
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
