#include "bench_runner.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "backend/cpu/peak_flops.h"
#include "backend/profiling_backend.h"
#include "backend/registry.h"
#include "backend/staged_tensor.h"
#ifdef KAKUSAN_HAVE_CUDA
#include "backend/cuda/cuda_registration.h"
#endif
#include "core/arena.h"
#include "core/cpu_time.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/generator.h"
#include "core/thread_pool.h"
#include "io/model_folder.h"
#include "models/autoencoder.h"
#include "models/clip_text_model.h"
#include "models/unet_2d_condition.h"
#include "nn/context.h"
#include "nn/device_weights.h"
#include "nn/upload_weights.h"
#include "pipeline/denoise.h"
#include "pipeline/generators.h"
#include "pipeline/memory_plan.h"
#include "pipeline/prepare_timesteps.h"
#include "pipeline/run_options.h"
#include "pipeline/step_graph.h"
#include "schedulers/scheduler.h"

namespace kakusan {
namespace {

// Resets the kernel's resident-set high-water mark (VmHWM) to the current RSS, so the next read covers one
// phase only. False where /proc/self/clear_refs is missing or refuses "5" (kernels before 4.0, some sandboxes).
bool reset_peak_rss() {
  std::ofstream clear("/proc/self/clear_refs");
  if (!clear) return false;
  clear << "5";
  clear.flush();
  return bool(clear);
}

// VmHWM of /proc/self/status in MB (10^6 bytes); 0 where it cannot be read.
double peak_rss_mb() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmHWM:", 0) == 0) return double(std::stoll(line.substr(6))) * 1024.0 / 1e6;
  return 0;
}

double load_average() {
  double load = -1;
  if (FILE* f = std::fopen("/proc/loadavg", "r")) {
    if (std::fscanf(f, "%lf", &load) != 1) load = -1;
    std::fclose(f);
  }
  return load;
}

struct Timing {
  double wall = 0, cpu = 0;
};

template <typename Fn>
Timing timed(Fn&& fn) {
  const auto wall0 = Clock::now();
  const double cpu0 = process_cpu_seconds();
  fn();
  return {seconds_since(wall0), process_cpu_seconds() - cpu0};
}

// The median (by wall time) of `repeats` timed runs.
template <typename Fn>
Timing median_of(int repeats, Fn&& fn) {
  std::vector<Timing> runs;
  for (int i = 0; i < repeats; ++i) runs.push_back(timed(fn));
  std::sort(runs.begin(), runs.end(), [](const Timing& a, const Timing& b) { return a.wall < b.wall; });
  return runs[runs.size() / 2];
}

// A phase's component on `be`: uploaded for good (offload none, as the pipeline at load), else a device copy
// held for the phase (model offload; with sequential offload the text encoder and VAE too, as the pipeline).
template <typename Module>
DeviceWeights phase_weights(Module& module, Backend& be, Offload offload) {
  DeviceWeights held(be);
  if (offload == Offload::None)
    upload_weights(module, be);
  else
    held.add_module(module);
  return held;
}

// A host tensor on `be` (itself on a host backend).
Tensor on_backend(Backend& be, Tensor host) {
  if (be.device().is_host()) return host;
  Tensor device = be.empty(host.shape(), host.dtype());
  be.upload(host, device);
  return device;
}

// Waits for the work that produces `out` (device backends run asynchronously; download synchronises), so
// that a timed region ends when the GPU is done, not when the last op was enqueued.
void finish(Backend& be, const TensorView& out) {
  if (be.device().is_host() || out.numel() == 0) return;
  Tensor one = Tensor::empty({1}, out.dtype);
  be.download(out.as_strided({1}, {1}), one);
}

// A fixed prompt as CLIP token ids, [2 * batch, T] with CFG ([batch, T], conditional only, without): the
// unconditional half is BOS then EOS padding, the conditional half BOS, a dozen word ids, then EOS padding. The ids only need to exist in the vocabulary:
// the text encoder costs the same for any of them.
Tensor fixed_token_ids(const ClipTextConfig& config, int batch, bool cfg) {
  const int64_t tokens = config.max_position_embeddings, vocab = config.vocab_size;
  const int64_t bos = std::max<int64_t>(vocab - 2, 0), eos = std::max<int64_t>(vocab - 1, 0);
  const int64_t rows = cfg ? 2 * int64_t(batch) : batch;
  Tensor ids = Tensor::empty({rows, tokens}, DType::I64);
  for (int64_t b = 0; b < rows; ++b) {
    const bool conditional = !cfg || b >= batch;
    for (int64_t i = 0; i < tokens; ++i) {
      int64_t id = eos;
      if (i == 0) id = bos;
      else if (conditional && i <= 12 && vocab > 2) id = (320 + 37 * i) % (vocab - 2);
      ids.i64()[b * tokens + i] = id;
    }
  }
  return ids;
}

const char* attention_name(AttentionStrategy s) {
  switch (s) {
    case AttentionStrategy::Auto: return "auto";
    case AttentionStrategy::Full: return "full";
    case AttentionStrategy::Sliced: return "sliced";
    case AttentionStrategy::Flash: return "flash";
  }
  return "auto";
}

// Tracks per-phase peak RSS: each phase starts by resetting the high-water mark.
class RssTracker {
 public:
  void start_phase() { per_phase_ = reset_peak_rss() && per_phase_; }
  double end_phase() {
    const double mb = peak_rss_mb();
    overall_ = std::max(overall_, mb);
    return mb;
  }
  bool per_phase() const { return per_phase_; }
  double overall() const { return overall_; }

 private:
  bool per_phase_ = true;
  double overall_ = 0;
};

double percent_of_peak(const BenchResult& r, const PhaseFigures& p) {
  return r.peak_gflops > 0 ? 100.0 * p.gflops() / r.peak_gflops : 0.0;
}

// The rate per busy core: FLOPs per process-CPU second against one core's share of the peak.
double percent_of_peak_by_cpu(const BenchResult& r, const PhaseFigures& p) {
  return r.peak_gflops > 0 && p.cpu_seconds > 0 ? 100.0 * p.flops / p.cpu_seconds / 1e9 / (r.peak_gflops / r.threads)
                                                : 0.0;
}

}  // namespace

BenchResult run_bench(const BenchOptions& options, const std::function<void(std::string_view)>& log) {
  auto say = [&](const std::string& line) {
    if (log) log(line);
  };
  KK_CHECK(options.batch >= 1, "--batch must be at least 1, got ", options.batch);
  KK_CHECK(options.steps >= 0, "--steps must be positive, got ", options.steps);
  KK_CHECK(options.threads >= 0, "--threads must be positive, got ", options.threads);
  Backend& be = backend_for_device(options.device);  // first: no usable device fails before any work
  if (options.threads > 0) set_num_threads(options.threads);

  // Everything cheap and checkable first: folder, components, configs, sizes, scheduler.
  const ModelFolder folder = ModelFolder::open(resolve_model_path(options.model));
  for (const char* component : {"text_encoder", "unet", "vae"})
    KK_CHECK(folder.has_component(component), folder.root().string(), "/model_index.json: no \"", component,
             "\" component (is this a Stable Diffusion model folder?)");
  const UNet2DConditionConfig unet_config =
      UNet2DConditionConfig::parse(JsonConfig::load(folder.component_dir("unet") / "config.json"));
  const std::filesystem::path vae_dir =
      options.vae.empty() ? folder.component_dir("vae") : resolve_vae_dir(options.vae);
  const AutoencoderInfo vae_info = read_autoencoder_info(vae_dir);
  const int scale = vae_info.downscale_factor;
  const int height = options.height ? options.height : unet_config.sample_size * scale;
  const int width = options.width ? options.width : unet_config.sample_size * scale;
  KK_CHECK(height > 0 && width > 0 && height % scale == 0 && width % scale == 0, "--height and --width must be "
           "positive multiples of ", scale, " (the VAE's scale factor), got ", height, "x", width);
  KK_CHECK(options.strength >= 0 && options.strength <= 1, "--strength must be in [0, 1] (0: text-to-image), got ",
           options.strength);
  KK_CHECK(options.strength == 0 || int(kEstimatedSteps * options.strength) >= 1 || options.steps > 0,
           "--strength ", options.strength, " leaves no step of ", kEstimatedSteps, " (give --steps)");
  std::unique_ptr<Scheduler> scheduler;
  if (options.steps > 0 || !options.scheduler.empty()) {
    KK_CHECK(folder.has_component("scheduler"), folder.root().string(), "/model_index.json: no \"scheduler\" "
             "component for --steps");
    scheduler = make_scheduler(options.scheduler.empty() ? folder.component("scheduler").class_name
                                                         : options.scheduler,
                               folder.load_config("scheduler"));
  }

  BenchResult r;
  r.height = height;
  r.width = width;
  r.batch = options.batch;
  r.threads = num_threads();
  r.weight_dtype = options.weight_dtype == DType::F16 ? "fp16" : options.weight_dtype == DType::BF16 ? "bf16" : "fp32";
  r.attention = attention_name(options.attention);
  r.scheduler = scheduler ? scheduler->class_name() : "";
  r.strength = options.strength;
  r.guidance = options.guidance;
  r.vae_class = vae_info.class_name;
  r.load_average = load_average();
  r.vector_isa = peak_vector_isa();
  say("measuring the fp32 FMA peak on " + std::to_string(r.threads) + " threads");
  r.peak_gflops = measure_peak_gflops(r.threads);

  AttentionParams attention;
  attention.strategy = options.attention;
  attention.precision = attention_precision(options.weight_dtype, be);  // every component's matrices are in it
  r.device = options.device;
  r.offload = options.offload;
  ProfilingBackend counter(be);
  RssTracker rss;
  // An arena reserved at the size a dry pass of `run` (on the NullBackend: no compute, no memory touched)
  // measured, as the pipeline's planner does: growing it during a real pass would leave the peak RSS of
  // its chunks in the phase's figure.
  auto sized_arena = [&](auto&& run) {
    NullBackend null;
    Arena dry_arena;
    Context dry{null, dry_arena, attention};
    run(dry);
    return std::make_unique<Arena>(be, dry_arena.peak_bytes());
  };
  // The kernels' scratch after a phase, in MB, then given back as the pipeline does between phases.
  auto end_scratch = [&be] {
    const double mb = double(be.scratch_bytes()) / 1e6;
    be.release_scratch();
    return mb;
  };
  // On a device with offload none, the pipeline holds every component's weights from load on: each phase's
  // component stays on the device to the end here too, so gpu_peak_mb counts what a pipeline run holds (the
  // VAE's weights join at the decode, the peak phase at 512x512). The host keeps one component at a time.
  std::vector<std::shared_ptr<void>> kept_on_device;
  auto keep_on_device = [&](auto&& component) {
    using Component = std::decay_t<decltype(component)>;
    if (!be.device().is_host() && options.offload == Offload::None)
      kept_on_device.push_back(std::make_shared<Component>(std::move(component)));
  };
  const bool do_cfg = options.guidance > 1.0;  // as the pipeline: CFG iff guidance_scale > 1
  const int64_t cfg_batch = do_cfg ? 2 * int64_t(options.batch) : options.batch;

  // 1. Text encoder: the CFG batch of fixed prompts. Released before the UNet is loaded.
  Tensor prompt_embeds;
  {
    rss.start_phase();
    say("text encoder: loading");
    std::optional<ClipTextModel> text_encoder;
    r.text_encoder.load_seconds =
        timed([&] { text_encoder.emplace(ClipTextModel::load(folder.component_dir("text_encoder"),
                                                              options.weight_dtype, "")); }).wall;
    KK_CHECK(text_encoder->config().hidden_size == unet_config.cross_attention_dim, "the text encoder's hidden "
             "size ", text_encoder->config().hidden_size, " differs from the UNet's cross_attention_dim ",
             unet_config.cross_attention_dim);
    const DeviceWeights held = phase_weights(*text_encoder, be, options.offload);
    const Tensor host_ids = fixed_token_ids(text_encoder->config(), options.batch, do_cfg);
    const Tensor ids = on_backend(be, host_ids.clone());
    const std::unique_ptr<Arena> arena_owner =
        sized_arena([&](Context& dry) { text_encoder->forward(dry, host_ids); });
    Arena& arena = *arena_owner;
    Context counting{counter, arena, attention};
    counter.reset();
    text_encoder->forward(counting, ids);
    r.text_encoder.flops = counter.total_flops();
    arena.reset();
    Context ctx{be, arena, attention};
    say("text encoder: timing");
    const Timing t = median_of(3, [&] {
      prompt_embeds = text_encoder->forward(ctx, ids);
      finish(be, prompt_embeds);
    });
    r.text_encoder.seconds = t.wall;
    r.text_encoder.cpu_seconds = t.cpu;
    r.text_encoder.arena_mb = double(arena.peak_bytes()) / 1e6;
    r.text_encoder.scratch_mb = end_scratch();
    r.text_encoder.peak_rss_mb = rss.end_phase();
    keep_on_device(std::move(*text_encoder));
  }

  // 2. UNet: one CFG step (counted, then timed), and with `steps` a whole denoising loop. Released before
  // the VAE is loaded.
  GeneratorSet generators({0}, {}, options.batch, 0);  // one generator: the latents, then scheduler noise
  // Image-to-image: a VAE encode phase (a smooth synthetic picture, the batch encoded at once and sampled as
  // the pipeline does). Released before the UNet is loaded.
  Tensor image_latents;
  if (options.strength > 0) {
    rss.start_phase();
    say("vae encode: loading");
    std::unique_ptr<Autoencoder> vae;
    r.vae_encode.load_seconds =
        timed([&] { vae = load_autoencoder(vae_dir, options.weight_dtype).model; }).wall;
    const DeviceWeights held = phase_weights(*vae, be, options.offload);
    Tensor host_image = Tensor::empty({options.batch, 3, height, width});
    for (int64_t i = 0; i < host_image.numel(); ++i) host_image.f32()[i] = float(i % 509) / 254.5f - 1.0f;
    const Tensor image = on_backend(be, std::move(host_image));
    Generator dry_draws(0);
    const std::unique_ptr<Arena> arena_owner =
        sized_arena([&](Context& dry) { vae->encode_latents(dry, image, {}, dry_draws); });
    Arena& arena = *arena_owner;
    Context counting{counter, arena, attention};
    counter.reset();
    say("vae encode: counting FLOPs (first pass)");
    vae->encode_latents(counting, image, {}, dry_draws);
    r.vae_encode.flops = counter.total_flops();
    arena.reset();
    Context ctx{be, arena, attention};
    say("vae encode: timing an encode");
    const Timing encode = timed([&] {
      image_latents = vae->encode_latents(ctx, image, {}, generators.shared());
      finish(be, image_latents);
    });
    be.scale(image_latents, vae->scaling_factor(), image_latents);
    image_latents = host_copy(be, image_latents);  // the scheduler's add_noise runs on the host
    r.vae_encode.seconds = encode.wall;
    r.vae_encode.cpu_seconds = encode.cpu;
    r.vae_encode.arena_mb = double(arena.peak_bytes()) / 1e6;
    r.vae_encode.scratch_mb = end_scratch();
    r.vae_encode.peak_rss_mb = rss.end_phase();
  }
  Tensor latents = generators.randn({options.batch, unet_config.in_channels, height / scale, width / scale});
  {
    rss.start_phase();
    say("unet: loading");
    std::optional<UNet2DConditionModel> unet;
    r.unet_step.load_seconds = timed([&] {
      unet.emplace(UNet2DConditionModel::load(folder.component_dir("unet"), options.weight_dtype));
    }).wall;
    // Sequential offload: each pass uploads the UNet's blocks one at a time (that time is in the step's).
    std::optional<BlockByBlockWeights<UNet2DConditionModel>> blockwise;
    std::optional<DeviceWeights> held;
    if (options.offload == Offload::Sequential)
      blockwise.emplace(be, *unet);
    else
      held.emplace(phase_weights(*unet, be, options.offload));
    auto run_unet = [&](Context& c, const TensorView& input, const TensorView& timestep, const TensorView& out) {
      if (blockwise) {
        blockwise->begin_pass();
        c.after_block = [&] { blockwise->after_block(); };
      }
      unet->forward(c, input, timestep, prompt_embeds, out);
    };
    Tensor host_input = Tensor::empty({cfg_batch, unet_config.in_channels, height / scale, width / scale});
    if (do_cfg)
      duplicate_batch(latents, host_input);
    else
      convert_into(latents, host_input);
    const Tensor model_input = on_backend(be, std::move(host_input));
    const Tensor t = on_backend(be, Tensor::full({1}, 981.0f));
    Tensor noise_pred = be.empty({cfg_batch, unet_config.out_channels, height / scale, width / scale});
    const std::unique_ptr<Arena> arena_owner =
        sized_arena([&](Context& dry) { unet->forward(dry, model_input, t, prompt_embeds, noise_pred); });
    Arena& arena = *arena_owner;
    Context counting{counter, arena, attention};
    counter.reset();
    say("unet: counting FLOPs (first pass)");
    run_unet(counting, model_input, t, noise_pred);
    r.unet_step.flops = counter.total_flops();
    arena.reset();
    Context ctx{be, arena, attention};
    // With cuda_graphs the step is captured on its second pass and replayed after, as in the pipeline (not with
    // sequential offload, whose uploads within the step cannot be captured).
    const NoiseModel unet_call = [&](const TensorView& input, const TensorView& timestep, const TensorView& out) {
      run_unet(ctx, input, timestep, out);
    };
    StepGraph graph(be, unet_call, [&](StepKey& key) {
      key.push_back(arena.layout_hash());
      add_to_key(key, prompt_embeds);
    });
    const NoiseModel unet_step = options.cuda_graphs && !blockwise ? NoiseModel(std::ref(graph)) : unet_call;
    if (options.steps == 0) {
      say("unet: timing one step");
      // A GPU step takes milliseconds: the median of several, each waited for (with graphs: the first eager,
      // the second captured, the rest replayed).
      const Timing step = median_of(be.device().is_host() ? 1 : 10, [&] {
        unet_step(model_input, t, noise_pred);
        finish(be, noise_pred);
      });
      r.unet_step.seconds = step.wall;
      r.unet_step.cpu_seconds = step.cpu;
    } else {
      // The pipeline's own loop (expand for CFG, scale, UNet, guidance, scheduler step), its UNet passes
      // timed one by one.
      scheduler->set_timesteps(options.steps);
      const std::vector<double>& timesteps = scheduler->timesteps();
      DenoiseOptions denoising;
      if (options.strength > 0) {  // img2img: the image latents noised to the first step
        denoising.first_step = first_step_for_strength(*scheduler, options.steps, options.strength);
        latents = scheduler->add_noise_at_step(image_latents, latents, size_t(denoising.first_step));
      } else {
        const float init_noise_sigma = float(scheduler->init_noise_sigma());
        for (int64_t i = 0; i < latents.numel(); ++i) latents.f32()[i] *= init_noise_sigma;
      }
      Timing unet_total, loop;
      denoising.classifier_free_guidance = do_cfg;
      denoising.guidance_scale = options.guidance;
      denoising.progress = [&](const Progress& p) {
        if (p.done < p.total) say("unet: step " + std::to_string(p.done + 1) + "/" + std::to_string(p.total));
      };
      const NoiseModel timed_unet = [&](const TensorView& input, const TensorView& timestep,
                                        const TensorView& prediction) {
        const Timing step = timed([&] {
          unet_step(input, timestep, prediction);
          finish(be, prediction);
        });
        unet_total.wall += step.wall;
        unet_total.cpu += step.cpu;
      };
      loop = timed([&] {
        latents = denoise(be, *scheduler, generators, std::move(latents), timed_unet, denoising);
      });
      r.unet_calls = int(timesteps.size()) - denoising.first_step;
      r.unet_step.seconds = unet_total.wall / r.unet_calls;
      r.unet_step.cpu_seconds = unet_total.cpu / r.unet_calls;
      r.total.seconds = loop.wall;
      r.total.cpu_seconds = loop.cpu;
    }
    if (options.profile) {
      say("unet: one pass op by op");
      counter.reset();
      run_unet(counting, model_input, t, noise_pred);
      for (const ProfilingBackend::Row& row : counter.rows()) {
        r.op_profile.push_back({row.op, row.calls, row.wall_s * 1e3});
        r.op_profile_ms += row.wall_s * 1e3;
      }
      say("unet op profile:\n" + counter.report());
    }
    r.unet_step.arena_mb = double(arena.peak_bytes()) / 1e6;
    r.cuda_graphs = options.cuda_graphs;
    r.graph_replays = graph.captures() + graph.replays();
    r.graph_gave_up = graph.gave_up();
    if (!r.graph_gave_up.empty()) say("unet: cuda graphs given up: " + r.graph_gave_up);
#ifdef KAKUSAN_HAVE_CUDA
    if (const auto gpu = cuda_memory(be)) r.gpu_used_mb = double(gpu->device_used_bytes) / 1e6;
#endif
    r.unet_step.scratch_mb = end_scratch();
    r.unet_step.peak_rss_mb = rss.end_phase();
    keep_on_device(std::move(*unet));
  }
  prompt_embeds = Tensor();

  // 3. VAE decode of latents / scaling_factor.
  {
    rss.start_phase();
    say("vae: loading");
    std::unique_ptr<Autoencoder> vae;
    r.vae_decode.load_seconds =
        timed([&] { vae = load_autoencoder(vae_dir, options.weight_dtype).model; }).wall;
    const DeviceWeights held = phase_weights(*vae, be, options.offload);
    Tensor host_z = latents.clone();
    for (int64_t i = 0; i < host_z.numel(); ++i) host_z.f32()[i] /= vae->scaling_factor();
    const Tensor z = on_backend(be, std::move(host_z));
    const std::unique_ptr<Arena> arena_owner = sized_arena([&](Context& dry) { vae->decode(dry, z, {}); });
    Arena& arena = *arena_owner;
    Context counting{counter, arena, attention};
    counter.reset();
    say("vae: counting FLOPs (first pass)");
    vae->decode(counting, z, {});
    r.vae_decode.flops = counter.total_flops();
    arena.reset();
    Context ctx{be, arena, attention};
    say("vae: timing a decode");
    const Timing decode = timed([&] { finish(be, vae->decode(ctx, z, {})); });
    r.vae_decode.seconds = decode.wall;
    r.vae_decode.cpu_seconds = decode.cpu;
    r.vae_decode.arena_mb = double(arena.peak_bytes()) / 1e6;
    r.vae_decode.scratch_mb = end_scratch();
    r.vae_decode.peak_rss_mb = rss.end_phase();
  }

  // Total: text encoder + the measured loop + VAE decode, or an estimate for kEstimatedSteps steps.
  r.total_measured = options.steps > 0;
  r.steps = r.total_measured ? options.steps : kEstimatedSteps;
  const int unet_calls = r.total_measured ? r.unet_calls
                         : options.strength > 0 ? int(kEstimatedSteps * options.strength)
                                                : kEstimatedSteps;
  if (!r.total_measured) {
    r.total.seconds = unet_calls * r.unet_step.seconds;
    r.total.cpu_seconds = unet_calls * r.unet_step.cpu_seconds;
  }
  r.total.seconds += r.text_encoder.seconds + r.vae_encode.seconds + r.vae_decode.seconds;
  r.total.cpu_seconds += r.text_encoder.cpu_seconds + r.vae_encode.cpu_seconds + r.vae_decode.cpu_seconds;
  r.total.flops = r.text_encoder.flops + r.vae_encode.flops + unet_calls * r.unet_step.flops + r.vae_decode.flops;
  r.total.load_seconds = r.text_encoder.load_seconds + r.vae_encode.load_seconds + r.unet_step.load_seconds +
                         r.vae_decode.load_seconds;
  r.peak_rss_mb = rss.overall();
  r.total.peak_rss_mb = r.peak_rss_mb;
#ifdef KAKUSAN_HAVE_CUDA
  if (const auto gpu = cuda_memory(be)) r.gpu_peak_mb = double(gpu->peak_bytes) / 1e6;
#endif
  r.rss_per_phase = rss.per_phase();
  return r;
}

std::string bench_table(const BenchResult& r) {
  std::string out;
  char line[512];
  const int unet_batch = r.guidance > 1.0 ? 2 * r.batch : r.batch;
  std::snprintf(line, sizeof line,
                "kakusan bench: %dx%d, batch %d (UNet batch %d, guidance %g), %s, %s weights, attention %s, %d "
                "thread%s\n"
                "fp32 peak (FMA loop, %s, %d thread%s): %.1f GFLOP/s; load average at start %.2f\n\n",
                r.height, r.width, r.batch, unet_batch, r.guidance, r.vae_class.c_str(), r.weight_dtype.c_str(), r.attention.c_str(), r.threads,
                r.threads == 1 ? "" : "s", r.vector_isa.c_str(), r.threads, r.threads == 1 ? "" : "s",
                r.peak_gflops, r.load_average);
  out += line;
  out += "| phase | seconds | CPU s | GFLOP | GFLOP/s | % of peak | % of peak (CPU) | peak RSS MB | arena MB | "
         "scratch MB | load s |\n";
  out += "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
  auto row = [&](const std::string& name, const PhaseFigures& p) {
    std::snprintf(line, sizeof line,
                  "| %s | %.4g | %.4g | %.1f | %.1f | %.1f%% | %.1f%% | %.0f | %.0f | %.0f | %.2f |\n", name.c_str(),
                  p.seconds, p.cpu_seconds, p.flops / 1e9, p.gflops(), percent_of_peak(r, p),
                  percent_of_peak_by_cpu(r, p), p.peak_rss_mb, p.arena_mb, p.scratch_mb, p.load_seconds);
    out += line;
  };
  row("text encoder", r.text_encoder);
  if (r.strength > 0) row("VAE encode (image-to-image)", r.vae_encode);
  row("UNet step (batch " + std::to_string(unet_batch) + ")", r.unet_step);
  row("VAE decode", r.vae_decode);
  row(r.total_measured ? "total (measured: " + std::to_string(r.steps) + " steps, " + r.scheduler + ")"
                       : "total (text encoder + " + std::string(r.strength > 0 ? "VAE encode + " : "") +
                             std::to_string(r.strength > 0 ? int(r.steps * r.strength) : r.steps) +
                             " x UNet step + VAE decode)",
      r.total);
  out += "\n";
  if (r.total_measured)
    out += "UNet step: mean of the loop's " + std::to_string(r.unet_calls) + " UNet passes. ";
  out += "Times exclude loading (load s) and each phase's first pass, which counts the FLOPs (a dry pass sized "
         "the arena before). GFLOP: the direct math of each op's shapes (Winograd convolutions multiply less, so a "
         "rate can pass 100%). % of peak (CPU): GFLOP per CPU second against one core's peak, what the kernels reach while they "
         "hold the cores (the stable figure when other processes share the machine).\n";
  out += r.rss_per_phase ? "Peak RSS per phase: the high-water mark reset (/proc/self/clear_refs) as each phase "
                           "starts; the total row is the whole run's.\n"
                         : "Peak RSS per phase is not supported here (/proc/self/clear_refs refused a reset): "
                           "each figure is the high-water mark since the process started.\n";
  return out;
}

std::string bench_json(const BenchResult& r) {
  nlohmann::ordered_json j;
  j["text_encoder_s"] = r.text_encoder.seconds;
  j["unet_step_s"] = r.unet_step.seconds;
  j["vae_decode_s"] = r.vae_decode.seconds;
  j["total_s"] = r.total.seconds;
  j["peak_rss_mb"] = r.peak_rss_mb;
  j["gflops_unet"] = r.unet_step.gflops();
  j["peak_gflops"] = r.peak_gflops;
  j["pct_peak_unet"] = percent_of_peak(r, r.unet_step);
  j["pct_peak_unet_cpu"] = percent_of_peak_by_cpu(r, r.unet_step);
  j["pct_peak_vae_decode_cpu"] = percent_of_peak_by_cpu(r, r.vae_decode);
  j["text_encoder_cpu_s"] = r.text_encoder.cpu_seconds;
  j["unet_step_cpu_s"] = r.unet_step.cpu_seconds;
  j["vae_decode_cpu_s"] = r.vae_decode.cpu_seconds;
  j["total_cpu_s"] = r.total.cpu_seconds;
  j["gflops_text_encoder"] = r.text_encoder.gflops();
  j["gflops_vae_decode"] = r.vae_decode.gflops();
  j["gflops_total"] = r.total.gflops();
  j["gflop_text_encoder"] = r.text_encoder.flops / 1e9;
  j["gflop_unet_step"] = r.unet_step.flops / 1e9;
  j["gflop_vae_decode"] = r.vae_decode.flops / 1e9;
  j["text_encoder_rss_mb"] = r.text_encoder.peak_rss_mb;
  j["unet_rss_mb"] = r.unet_step.peak_rss_mb;
  j["vae_decode_rss_mb"] = r.vae_decode.peak_rss_mb;
  j["text_encoder_arena_mb"] = r.text_encoder.arena_mb;
  j["unet_arena_mb"] = r.unet_step.arena_mb;
  j["vae_decode_arena_mb"] = r.vae_decode.arena_mb;
  j["text_encoder_scratch_mb"] = r.text_encoder.scratch_mb;
  j["unet_scratch_mb"] = r.unet_step.scratch_mb;
  j["vae_decode_scratch_mb"] = r.vae_decode.scratch_mb;
  if (r.strength > 0) {
    j["strength"] = r.strength;
    j["vae_encode_s"] = r.vae_encode.seconds;
    j["vae_encode_cpu_s"] = r.vae_encode.cpu_seconds;
    j["gflop_vae_encode"] = r.vae_encode.flops / 1e9;
    j["vae_encode_rss_mb"] = r.vae_encode.peak_rss_mb;
    j["vae_encode_arena_mb"] = r.vae_encode.arena_mb;
  }
  j["load_s"] = r.total.load_seconds;
  j["rss_per_phase"] = r.rss_per_phase;
  j["height"] = r.height;
  j["width"] = r.width;
  j["batch"] = r.batch;
  j["steps"] = r.steps;
  j["total_measured"] = r.total_measured;
  if (r.total_measured) j["scheduler"] = r.scheduler;
  j["guidance"] = r.guidance;
  j["vae_class"] = r.vae_class;
  j["dtype"] = r.weight_dtype;
  j["attention"] = r.attention;
  j["threads"] = r.threads;
  j["load_average"] = r.load_average;
  j["device"] = r.device;
  j["offload"] = offload_name(r.offload);
  if (r.gpu_peak_mb >= 0) j["gpu_peak_mb"] = r.gpu_peak_mb;
  if (r.gpu_used_mb >= 0) j["gpu_used_mb"] = r.gpu_used_mb;
  j["cuda_graphs"] = r.cuda_graphs;
  j["graph_replays"] = r.graph_replays;
  if (!r.graph_gave_up.empty()) j["graph_gave_up"] = r.graph_gave_up;
  if (!r.op_profile.empty()) {
    constexpr size_t kRows = 20;  // the JSON keeps the costliest; stderr has the whole table
    nlohmann::json rows = nlohmann::json::array();
    for (size_t i = 0; i < std::min(kRows, r.op_profile.size()); ++i)
      rows.push_back({{"op", r.op_profile[i].op}, {"calls", r.op_profile[i].calls}, {"ms", r.op_profile[i].ms}});
    j["op_profile"] = rows;
    j["op_profile_ms"] = r.op_profile_ms;
  }
  return j.dump();
}

}  // namespace kakusan
