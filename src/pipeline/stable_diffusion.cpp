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

#include "core/clock.h"
#include "backend/backend.h"
#include "core/arena.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "io/image.h"
#include "io/mapped_file.h"
#include "io/model_folder.h"
#include "kakusan/pipeline.h"
#include "models/autoencoder_kl.h"
#include "models/unet_2d_condition.h"
#include "nn/weights.h"
#include "pipeline/generators.h"
#include "pipeline/guidance.h"
#include "pipeline/memory_plan.h"
#include "pipeline/postprocess.h"
#include "pipeline/prompt_encoder.h"
#include "schedulers/scheduler.h"

namespace kakusan {

namespace {

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

// The mapped weight files of one component. Weights borrowed from a mapping cost RSS only for the pages
// touched; dropping those pages after the component's phase (the text encoder after encoding, the UNet
// before decoding, the VAE after it) keeps one component resident at a time, as diffusers'
// enable_model_cpu_offload does, while the pipeline stays loaded: the next use faults the pages back in from
// the page cache, once per generate().
class ResidentWeights {
 public:
  void add(const WeightStore& store) {
    for (const SafetensorsFile& file : store.files()) mappings_.push_back(file.mapping());
  }
  void drop_pages() const {
    for (const std::shared_ptr<const MappedFile>& file : mappings_) file->drop_pages();
  }
  // Whether `p` points into one of the mappings (a borrowed weight, whose pages drop_pages() releases).
  bool contains(const void* p) const {
    const auto* byte = static_cast<const std::byte*>(p);
    for (const std::shared_ptr<const MappedFile>& file : mappings_)
      if (byte >= file->data() && byte < file->data() + file->size()) return true;
    return false;
  }

 private:
  std::vector<std::shared_ptr<const MappedFile>> mappings_;
};

// After a phase: record what the kernels' scratch grew to, give it back (so the UNet's buffers are not held
// through the VAE decode), and drop the component's pages.
void end_phase(const ResidentWeights& weights, int64_t& scratch_bytes) {
  Backend& backend = cpu_backend();
  scratch_bytes = int64_t(backend.scratch_bytes());
  backend.release_scratch();
  weights.drop_pages();
}

// A model component (UNet, VAE, text encoder) from its folder: config, then the weight files of the
// requested variant (default files when the folder has no such variant), matrices kept in the requested
// dtype (Auto: as stored). `library` names the file family ("diffusers" or "transformers").
template <typename Model, typename Config>
Model load_component(const std::filesystem::path& dir, const std::string& variant, WeightDType dtype,
                     const char* class_name, ResidentWeights& resident, const char* library = "diffusers") {
  Model model(Config::parse(JsonConfig::load(dir / "config.json")));
  const WeightStore store = WeightStore::open(find_weight_files(dir, variant, library).files);
  load_weights(model, store, weight_dtype_for(dtype, store), class_name);
  resident.add(store);
  resident.drop_pages();  // loading touched only the headers and converted tensors; nothing stays resident
  return model;
}

// Bytes of a module's parameters as held (f16 matrices count 2 bytes an element), and of those the bytes
// borrowed from `mapped` (pages that drop_pages() releases; converted or realigned copies are owned).
class ByteCounter : public WeightVisitor {
 public:
  explicit ByteCounter(const ResidentWeights* mapped = nullptr) : mapped_(mapped) {}
  void tensor(const std::string&, Tensor& param, const Shape&) override {
    bytes += int64_t(param.nbytes());
    if (mapped_ != nullptr && mapped_->contains(param.data())) mapped_bytes += int64_t(param.nbytes());
  }
  int64_t bytes = 0, mapped_bytes = 0;

 private:
  const ResidentWeights* mapped_;
};

template <typename Model>
int64_t weight_bytes(Model& model) {
  ByteCounter counter;
  model.visit(counter);
  return counter.bytes;
}

// Scratch the CPU backend's attention takes per call (score matrices), by strategy: full attention holds one
// Tq x Tk matrix per thread, sliced `slice_size` of them, flash a tile (below 1 MB: ignored).
int64_t attention_scratch_bytes(const AttentionParams& attention, int64_t tokens, int64_t keys) {
  const int64_t matrix = tokens * keys * int64_t(sizeof(float));
  switch (attention.strategy) {
    case AttentionStrategy::Full: return matrix * num_threads();
    case AttentionStrategy::Sliced: return matrix * std::max(1, attention.slice_size);
    case AttentionStrategy::Flash: return 0;
    case AttentionStrategy::Auto: return keys <= 512 ? matrix * num_threads() : 0;
  }
  return 0;
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
  ResidentWeights text_encoder_weights, unet_weights, vae_weights;
  std::vector<std::string> load_warnings;  // reported with every generate()
  bool half_pipeline = false;              // loaded with dtype F16 (diffusers' torch_dtype=torch.float16)

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

  // Weight bytes of each component as held in memory (set by load()).
  int64_t text_encoder_bytes = 0, unet_bytes = 0, vae_bytes = 0;
  int64_t unet_streamed_bytes = 0;  // resident with stream_unet_weights (see load())

  MemoryEstimate estimate_memory(const GenerateParams& p, const Shape& latents_shape, int64_t unet_batch,
                                 const AttentionParams& attention, const VaeMemoryOptions& vae_memory) const;
  MemoryEstimate plan_memory(GenerateParams& p, const Shape& latents_shape, int64_t unet_batch,
                             GenerateResult& result) const;

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
  scheduler_source = fix_up_scheduler_config(folder->load_config("scheduler"), load_warnings);
  set_scheduler(options.scheduler.empty() ? folder->component("scheduler").class_name : options.scheduler,
                options.scheduler_options);
  const std::filesystem::path vae_dir = options.vae ? resolve_vae_dir(*options.vae) : folder->component_dir("vae");
  if (options.num_threads > 0) set_num_threads(options.num_threads);

  std::string variant = options.variant;
  if (variant.empty() && options.dtype == WeightDType::F16) variant = "fp16";
  half_pipeline = options.dtype == WeightDType::F16;
  const int total = 4;
  report(options.progress, Phase::Loading, 0, total);
  ClipTokenizer tokenizer = ClipTokenizer::load(folder->component_dir("tokenizer"));
  report(options.progress, Phase::Loading, 1, total, "tokenizer");
  ClipTextModel text_encoder = load_component<ClipTextModel, ClipTextConfig>(
      folder->component_dir("text_encoder"), variant, options.dtype, "CLIPTextModel", text_encoder_weights, "transformers");
  prompt_encoder.emplace(std::move(tokenizer), std::move(text_encoder));
  report(options.progress, Phase::Loading, 2, total, "text_encoder");
  unet.emplace(load_component<UNet2DConditionModel, UNet2DConditionConfig>(folder->component_dir("unet"), variant,
                                                                          options.dtype, "UNet2DConditionModel",
                                                                          unet_weights));
  report(options.progress, Phase::Loading, 3, total, "unet");
  vae.emplace(load_component<AutoencoderKL, AutoencoderKLConfig>(vae_dir, variant, options.dtype, "AutoencoderKL",
                                                                       vae_weights));
  report(options.progress, Phase::Loading, 4, total, "vae");
  text_encoder_bytes = weight_bytes(const_cast<ClipTextModel&>(prompt_encoder->text_encoder()));
  unet_bytes = weight_bytes(*unet);
  vae_bytes = weight_bytes(*vae);
  // Streaming releases only mapped pages, block by block: owned copies stay, and so do mapped weights outside
  // the blocks once touched (time embedding, conv_in/out: small).
  ByteCounter whole(&unet_weights);
  unet->visit(whole);
  int64_t largest_block = 0, in_blocks = 0;
  for (size_t i = 0; i < unet->num_blocks(); ++i) {
    ByteCounter block(&unet_weights);
    unet->visit_block(i, block);
    largest_block = std::max(largest_block, block.mapped_bytes);
    in_blocks += block.mapped_bytes;
  }
  unet_streamed_bytes = (whole.bytes - in_blocks) + largest_block;
  KK_CHECK(vae->config().latent_channels == unet->config().in_channels, "the VAE (", vae_dir.string(), ") has ",
           vae->config().latent_channels, " latent channels but the UNet expects ", unet->config().in_channels);
}

MemoryEstimate StableDiffusionPipeline::Impl::estimate_memory(const GenerateParams& p, const Shape& latents_shape,
                                                              int64_t unet_batch, const AttentionParams& attention,
                                                              const VaeMemoryOptions& vae_memory) const {
  NullBackend null;
  MemoryEstimate e;
  e.overhead = kMemoryOverheadBytes;
  const int64_t f32 = sizeof(float);
  const ClipTextConfig& text_config = prompt_encoder->text_encoder().config();
  const int64_t tokens = text_config.max_position_embeddings;
  const int64_t embeds_bytes = unet_batch * tokens * text_config.hidden_size * f32;
  const int64_t latents_bytes = latents_shape.numel() * f32;
  const int64_t latent_tokens = latents_shape[2] * latents_shape[3];
  {
    Arena arena;
    Context ctx{null, arena, attention};
    const Tensor ids = Tensor::zeros({int64_t(p.prompt.size()), tokens}, DType::I64);
    prompt_encoder->text_encoder().forward(ctx, ids);
    e.encoding = {text_encoder_bytes, int64_t(arena.peak_bytes()),
                  2 * embeds_bytes + attention_scratch_bytes(attention, tokens, tokens)};
  }
  {
    Arena arena;
    Context ctx{null, arena, attention};
    Tensor input = Tensor::empty({unet_batch, latents_shape[1], latents_shape[2], latents_shape[3]});
    Tensor embeds = Tensor::empty({unet_batch, tokens, text_config.hidden_size});
    Tensor noise_pred = Tensor::empty({unet_batch, unet->config().out_channels, latents_shape[2], latents_shape[3]});
    const Tensor t = Tensor::full({1}, 999.0f);
    unet->forward(ctx, input, t, embeds, noise_pred);
    // latents, the CFG input, noise_pred, the guided prediction and the scheduler's history (a few latents).
    e.denoising = {p.stream_unet_weights ? unet_streamed_bytes : unet_bytes, int64_t(arena.peak_bytes()),
                   embeds_bytes + 8 * latents_bytes + attention_scratch_bytes(attention, latent_tokens, latent_tokens)};
  }
  {
    Arena arena;
    Context ctx{null, arena, attention};
    const Tensor z = Tensor::empty(latents_shape);
    const Tensor decoded = vae->decode(ctx, z, vae_memory);
    // The decoded image, its NHWC copy, the result's float copy and the RGB8 images.
    const int64_t image_bytes = int64_t(decoded.nbytes());
    const int64_t tile_side = vae->tile_latent_size(vae_memory);  // latent pixels per tile side
    const int64_t vae_tokens = vae_memory.tiling ? std::min(latent_tokens, tile_side * tile_side) : latent_tokens;
    e.decoding = {vae_bytes, int64_t(arena.peak_bytes()),
                  3 * image_bytes + image_bytes / 4 + attention_scratch_bytes(attention, vae_tokens, vae_tokens)};
  }
  return e;
}

// Estimates the run (the dry pass also sizes the phases' arenas), compares the estimate with the limit and,
// with MemoryPolicy::Auto, turns memory levers on until it fits.
MemoryEstimate StableDiffusionPipeline::Impl::plan_memory(GenerateParams& p, const Shape& latents_shape,
                                                          int64_t unet_batch, GenerateResult& result) const {
  auto estimate = [&](const GenerateParams& q, const Shape& shape) {
    VaeMemoryOptions vae_memory;
    vae_memory.slicing = q.vae_slicing;
    vae_memory.tiling = q.vae_tiling;
    vae_memory.tile_size = q.vae_tile_size;
    return estimate_memory(q, shape, unet_batch, attention_params(q.attention), vae_memory);
  };
  MemoryEstimate e = estimate(p, latents_shape);
  result.memory.estimated_peak = e.peak();
  result.memory.estimated_unet_arena = e.denoising.arena;
  result.memory.estimated_vae_arena = e.decoding.arena;
  if (p.memory_policy == GenerateParams::MemoryPolicy::Off) return e;
  const int64_t limit = p.max_memory > 0 ? p.max_memory : available_memory_bytes();
  if (limit <= 0 || e.peak() <= limit) return e;
  const std::string first_estimate = e.describe();

  // The levers, least costly first. VAE tiling blends tile seams (the image changes slightly, as with
  // diffusers' enable_vae_tiling); the others change nothing beyond float rounding.
  GenerateParams adapted = p;
  adapted.memory_policy = GenerateParams::MemoryPolicy::Off;
  std::vector<std::string> levers;
  auto pull = [&](bool applies, const char* name, auto&& apply) {
    if (!applies || e.peak() <= limit) return;
    apply(adapted);
    levers.push_back(name);
    e = estimate(adapted, latents_shape);
  };
  pull(p.attention.mode == AttentionOptions::Mode::Full || p.attention.mode == AttentionOptions::Mode::Sliced,
       "flash attention", [](GenerateParams& q) { q.attention.mode = AttentionOptions::Mode::Flash; });
  pull(!p.vae_slicing && latents_shape[0] > 1, "VAE slicing", [](GenerateParams& q) { q.vae_slicing = true; });
  pull(!p.vae_tiling, "VAE tiling", [](GenerateParams& q) { q.vae_tiling = true; });
  pull(!p.stream_unet_weights, "streamed UNet weights", [](GenerateParams& q) { q.stream_unet_weights = true; });
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
    p.stream_unet_weights = adapted.stream_unet_weights;
    p.vae_tile_size = adapted.vae_tile_size;
    result.memory.estimated_peak = e.peak();
    result.memory.estimated_unet_arena = e.denoising.arena;
    result.memory.estimated_vae_arena = e.decoding.arena;
    return e;
  }
  // Refuse, saying what would fit: the levers, or failing that the largest square image that fits with them.
  std::string would_fit;
  if (e.peak() <= limit) {
    would_fit = str_cat("it fits with ", lever_list, " (", format_megabytes(e.peak()), ")");
  } else {
    const int64_t scale = vae_scale_factor();
    for (int64_t side = std::max(latents_shape[2], latents_shape[3]) * scale / 64 * 64; side >= 64; side -= 64) {
      const Shape smaller{latents_shape[0], latents_shape[1], side / scale, side / scale};
      const MemoryEstimate small = estimate(adapted, smaller);
      if (small.peak() <= limit) {
        would_fit = str_cat("a ", side, "x", side, " image would fit (", format_megabytes(small.peak()),
                            lever_list.empty() ? "" : " with ", lever_list, ")");
        break;
      }
    }
    if (would_fit.empty())
      would_fit = str_cat("no size fits: the largest component's weights alone need ",
                          format_megabytes(std::max({text_encoder_bytes, unet_bytes, vae_bytes})));
  }
  fail("not enough memory: the run needs about ", first_estimate, " but the limit is ", format_megabytes(limit),
       p.max_memory > 0 ? " (max_memory)" : " (MemAvailable)", "; ", would_fit);
}

GenerateResult StableDiffusionPipeline::Impl::generate(const GenerateParams& params) {
  // 0. Default height and width to unet.sample_size * vae_scale_factor; check inputs.
  check_inputs(params);
  GenerateParams p = params;  // the memory planner may turn levers on
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
  const int64_t unet_batch = do_cfg ? 2 * num_images : num_images;
  GenerateResult result;
  const MemoryEstimate plan = plan_memory(p, latents_shape, unet_batch, result);
  auto inspect = [&](std::string_view name, const TensorView& t) {
    if (p.inspect) p.inspect(NamedTensor{name, t.f32(), dims_of(t.shape)});
  };

  // One arena per phase, reserved at the size the dry pass measured (one block: an arena left to grow opens
  // a new chunk whenever the last one is full, and earlier chunks freed by a scope are not reused until
  // reset(), so a growing arena held several times its peak) and freed when the phase ends, so the text
  // encoder's, UNet's and VAE's activations are never held at the same time (nor between calls).
  const AttentionParams attention = attention_params(p.attention);
  result.warnings.insert(result.warnings.begin(), load_warnings.begin(), load_warnings.end());

  // 1. Encode the input prompt: [uncond..., cond...] with classifier-free guidance.
  PromptBatch batch{p.prompt, p.negative_prompt, p.num_images_per_prompt, do_cfg, p.clip_skip};
  const int encode_total = PromptEncoder::num_batches(batch);
  int encoded = 0;
  report(p.progress, Phase::Encoding, 0, encode_total);
  EncodedPrompts prompts = [&] {
    Arena arena(size_t(plan.encoding.arena));
    Context ctx{cpu_backend(), arena, attention};
    EncodedPrompts encoded_prompts = prompt_encoder->encode(
        ctx, batch, [&] { report(p.progress, Phase::Encoding, ++encoded, encode_total); });
    result.memory.text_encoder_arena = int64_t(arena.peak_bytes());
    return encoded_prompts;
  }();
  end_phase(text_encoder_weights, result.memory.text_encoder_scratch);
  result.warnings.insert(result.warnings.end(), prompts.warnings.begin(), prompts.warnings.end());
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
  GeneratorSpec generator_spec;
  if (p.generator_device == "cuda")
    generator_spec = {GeneratorDevice::Cuda, {p.cuda_sm_count, p.cuda_max_threads_per_sm}, half_pipeline};
  GeneratorSet generators(p.seeds, p.generator_index, num_images, p.seeds.empty() ? random_seed() : 0,
                          generator_spec);
  result.seeds = generators.image_seeds();
  Tensor latents;
  if (p.latents.empty()) {
    latents = generators.randn(latents_shape);
  } else {
    latents = Tensor::empty(latents_shape);
    std::memcpy(latents.f32(), p.latents.data(), latents.nbytes());
  }
  inspect("init_noise", latents);
  result.init_noise.assign(latents.f32(), latents.f32() + latents.numel());
  const float init_noise_sigma = float(scheduler->init_noise_sigma());
  for (int64_t i = 0; i < latents.numel(); ++i) latents.f32()[i] *= init_noise_sigma;

  // 4. Denoising loop.
  const int num_steps = int(timesteps.size());
  report(p.progress, Phase::Denoising, 0, num_steps);
  Tensor t = Tensor::empty({1});
  Tensor noise_pred = Tensor::empty({unet_batch, unet->config().out_channels, latents_shape[2], latents_shape[3]});
  std::optional<Arena> unet_arena(std::in_place, size_t(plan.denoising.arena));
  Context ctx{cpu_backend(), *unet_arena, attention};
  if (p.stream_unet_weights) ctx.after_block = [&] { unet_weights.drop_pages(); };
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
  result.memory.unet_arena = int64_t(unet_arena->peak_bytes());
  unet_arena.reset();
  end_phase(unet_weights, result.memory.unet_scratch);
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
    memory.tile_size = p.vae_tile_size;
    Arena arena(size_t(plan.decoding.arena));
    Context vae_ctx{cpu_backend(), arena, attention};
    const Tensor decoded = vae->decode(vae_ctx, scaled, memory);
    result.memory.vae_arena = int64_t(arena.peak_bytes());
    images = denormalize_to_nhwc(decoded);
  }
  end_phase(vae_weights, result.memory.vae_scratch);
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
