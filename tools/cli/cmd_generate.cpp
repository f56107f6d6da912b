// kakusan generate: text to image(s) with a diffusers Stable Diffusion folder, as StableDiffusionPipeline;
// with --image as StableDiffusionImg2ImgPipeline, with --image and --mask-image as
// StableDiffusionInpaintPipeline (an inpainting UNet with 9 input channels, or an ordinary one).
//
//   kakusan generate --model DIR [--vae DIR] --prompt P1 [--prompt P2 ...] [--negative-prompt N1 ...]
//     [--steps N] [--guidance G] [--height H] [--width W] [--seed S1 [--seed S2 ...]]
//     [--num-images-per-prompt K] [--eta E] [--scheduler ClassName|alias] [--scheduler-option key=value ...]
//     [--attention-slicing auto|N|off] [--dtype fp32|fp16|bf16] [--threads N] [--output out.png] [--grid ROWSxCOLS]
//     [--save-tensors out.safetensors] [--clip-skip N] [--offload none|model|sequential] [--memory auto|refuse|off] [--max-memory 2G] [--quiet]
//     [--generator cpu|cuda] [--cuda-sm-count N] [--cuda-threads-per-sm N] [--device cpu|reference|cuda[:N]]
//     [--prompt-syntax diffusers|a1111] [--image in.png [--mask-image mask.png] [--strength S]]
//     [--lora FILE[:SCALE] ...] [--lora-dir DIR] [--embedding FILE[:TOKEN] ...]
//
// Seeds: repeated --seed gives one generator per image (their count must equal the number of images);
// one --seed with several images gives ONE generator shared by all of them; no --seed picks a random seed
// and prints it. --generator cuda reproduces torch.Generator("cuda") seeds (the PNG text then says "RNG: NV",
// as A1111 names its NVIDIA-compatible CPU generator). Files: --output out.png writes out.png, out-1.png,
// out-2.png, ... (image i > 0 gets "-<i>"), each with the A1111 `parameters` text; --grid RxC also writes
// out-grid.png. Everything is checked before any work starts, and a bad request writes no file (exit code 2).
// Ctrl-C stops after the current denoising step and writes nothing (exit code 130); a second Ctrl-C kills at
// once.
#include <cmath>
#include <charconv>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>

#include "bf16_notice.h"
#include "command.h"
#include "offload_option.h"
#include "core/error.h"
#include "core/philox_generator.h"
#include "io/image.h"
#include "io/png.h"
#include "io/safetensors.h"
#include "kakusan/pipeline.h"
#include "pipeline/file_arguments.h"
#include "pipeline/generate_request.h"
#include "pipeline/lora_tags.h"
#include "pipeline/output_files.h"
#include "pipeline/progress.h"

namespace kakusan::cli {
namespace {

struct GenerateOptions {
  std::string model;
  std::string vae;
  std::string config, tokenizer;  // single-file checkpoints
  std::vector<std::string> loras;  // FILE[:SCALE]
  std::string lora_dir;            // <lora:NAME:W> prompt tags name NAME.safetensors here
  std::vector<std::string> embeddings;  // FILE[:TOKEN]
  std::vector<std::string> prompts;
  std::vector<std::string> negative_prompts;
  int steps = GenerateParams{}.num_inference_steps;
  double guidance = GenerateParams{}.guidance_scale;
  double guidance_rescale = 0.0;
  int height = 0, width = 0;
  std::vector<std::string> seeds;
  std::string generator = "cpu";
  std::string cuda_sm_count = std::to_string(GenerateParams{}.cuda_sm_count);
  std::string cuda_threads_per_sm = std::to_string(GenerateParams{}.cuda_max_threads_per_sm);
  int num_images_per_prompt = 1;
  double eta = 0.0;
  std::string scheduler;
  std::vector<std::string> scheduler_options;
  std::string attention_slicing = "off";
  std::string dtype;  // empty: fp16 on a CUDA device, fp32 elsewhere
  std::string device = "cpu";
  std::string variant;
  int threads = 0;
  std::string output = "output.png";
  std::string grid;
  std::string save_tensors;
  int clip_skip = -1;
  std::string prompt_syntax = "diffusers";
  bool vae_slicing = false;
  bool vae_tiling = false;
  int vae_tile_size = 0;
  bool low_memory = false;
  bool no_cuda_graphs = false;
  std::string offload = "none";
  std::string memory = "auto";
  std::string max_memory;
  bool quiet = false;
  std::vector<std::string> images;
  std::vector<std::string> masks;
  std::optional<double> strength;
};

// "2G", "1500M", "512k" or a plain byte count (powers of 1000, as the planner's messages print MB).
int64_t parse_memory_size(const std::string& text) {
  int64_t value = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  const std::string suffix(ptr, text.data() + text.size());
  int64_t scale = 0;
  if (suffix.empty() || suffix == "B") scale = 1;
  if (suffix == "k" || suffix == "K" || suffix == "KB") scale = 1'000;
  if (suffix == "M" || suffix == "MB") scale = 1'000'000;
  if (suffix == "G" || suffix == "GB") scale = 1'000'000'000;
  KK_CHECK(ec == std::errc() && value > 0 && scale > 0 && value <= INT64_MAX / scale, "--max-memory \"", text,
           "\" is not a size (e.g. 2G, 1500M or a byte count)");
  return value * scale;
}

GenerateParams::MemoryPolicy parse_memory_policy(const std::string& text) {
  if (text == "auto") return GenerateParams::MemoryPolicy::Auto;
  if (text == "refuse") return GenerateParams::MemoryPolicy::Refuse;
  if (text == "off") return GenerateParams::MemoryPolicy::Off;
  fail("--memory \"", text, "\" must be auto, refuse or off");
}

// A seed as torch.Generator.manual_seed takes it: 0 .. 2^64-1, or a negative number (taken modulo 2^64).
uint64_t parse_seed(const std::string& text) {
  const char* begin = text.data();
  const char* end = begin + text.size();
  if (!text.empty() && text[0] == '-') {
    int64_t value = 0;
    const auto [ptr, ec] = std::from_chars(begin, end, value);
    KK_CHECK(ec == std::errc() && ptr == end, "--seed \"", text, "\" is not an integer");
    return uint64_t(value);
  }
  uint64_t value = 0;
  const auto [ptr, ec] = std::from_chars(begin, end, value);
  KK_CHECK(ec == std::errc() && ptr == end, "--seed \"", text, "\" is not an integer between 0 and 2^64-1");
  return value;
}

// An integer flag in [lo, hi], read here rather than by CLI11 so that a bad value is one line naming the flag.
int parse_int_in(const std::string& text, const char* flag, int lo, int hi) {
  int value = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  KK_CHECK(ec == std::errc() && ptr == text.data() + text.size() && value >= lo && value <= hi, flag, " \"", text,
           "\" is not an integer in ", lo, "..", hi);
  return value;
}

// --generator and the GPU whose launch grid --generator cuda follows (all checked here, whatever the order of
// the other checks).
void set_generator(const GenerateOptions& o, GenerateRequest& p) {
  KK_CHECK(o.generator == "cpu" || o.generator == "cuda", "--generator \"", o.generator, "\" must be cpu or cuda");
  p.generator_device = o.generator;
  p.cuda_sm_count = parse_int_in(o.cuda_sm_count, "--cuda-sm-count", 1, CudaLaunchShape::kMaxSmCount);
  p.cuda_max_threads_per_sm = parse_int_in(o.cuda_threads_per_sm, "--cuda-threads-per-sm",
                                           CudaLaunchShape::kMinThreadsPerSm, CudaLaunchShape::kMaxThreadsPerSm);
}

std::map<std::string, std::string> parse_scheduler_options(const std::vector<std::string>& items) {
  std::map<std::string, std::string> options;
  for (const std::string& item : items) {
    const size_t eq = item.find('=');
    KK_CHECK(eq != std::string::npos && eq > 0, "--scheduler-option \"", item, "\" is not key=value");
    options[item.substr(0, eq)] = item.substr(eq + 1);
  }
  return options;
}

AttentionOptions parse_attention_slicing(const std::string& text) {
  AttentionOptions attention;
  if (text == "off") return attention;
  attention.mode = AttentionOptions::Mode::Sliced;
  if (text == "auto") return attention;
  int slice = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), slice);
  KK_CHECK(ec == std::errc() && ptr == text.data() + text.size() && slice >= 1, "--attention-slicing \"", text,
           "\" is not auto, off or a positive slice size");
  attention.slice_size = slice;
  return attention;
}

WeightDType parse_dtype(const std::string& text, const std::string& device) {
  // Not given: fp16 on a CUDA device (the tutorial's pipe.to("cuda") with torch_dtype=torch.float16), fp32
  // elsewhere.
  if (text.empty()) return device.rfind("cuda", 0) == 0 ? WeightDType::F16 : WeightDType::F32;
  if (text == "fp32") return WeightDType::F32;
  if (text == "fp16") return WeightDType::F16;
  if (text == "bf16") return WeightDType::BF16;
  fail("--dtype \"", text, "\" is not fp32, fp16 or bf16");
}

// The folder an output file goes into must exist before any work starts.
void check_output_folder(const std::filesystem::path& file, const char* flag) {
  const std::filesystem::path parent = file.parent_path();
  KK_CHECK(parent.empty() || std::filesystem::is_directory(parent), flag, " ", file.string(), ": folder ",
           parent.string(), " does not exist");
  KK_CHECK(!std::filesystem::is_directory(file), flag, " ", file.string(), " is a folder, not a file name");
}

struct Request {
  LoadOptions load;
  GenerateParams params;
  std::optional<GridSpec> grid;
};

// Everything about the command line that can be judged before loading the model.
Request build_request(const GenerateOptions& o) {
  Request r;
  r.load.vae = o.vae.empty() ? std::nullopt : std::optional<std::string>(o.vae);
  if (!o.config.empty()) r.load.config = o.config;
  if (!o.tokenizer.empty()) r.load.tokenizer = o.tokenizer;
  for (const std::string& lora : o.loras) r.load.loras.push_back(parse_lora_argument(lora));
  if (!o.lora_dir.empty()) {
    KK_CHECK(std::filesystem::is_directory(o.lora_dir), "--lora-dir ", o.lora_dir, " is not a folder");
    r.load.lora_dir = o.lora_dir;
  }
  for (const std::string& e : o.embeddings) {
    auto [file, token] = split_file_suffix(e);
    r.load.embeddings.push_back({std::move(file), std::move(token)});
  }
  r.load.dtype = parse_dtype(o.dtype, o.device);
  r.load.device = o.device;
  r.load.variant = o.variant;
  r.load.scheduler = o.scheduler;
  r.load.scheduler_options = parse_scheduler_options(o.scheduler_options);
  KK_CHECK(o.threads >= 0, "--threads must be >= 0 but is ", o.threads);
  r.load.num_threads = o.threads;
  r.load.offload = offload_from_name(o.offload);

  GenerateRequest g;
  g.prompts = o.prompts;
  g.negative_prompts = o.negative_prompts;
  g.num_inference_steps = o.steps;
  g.guidance_scale = o.guidance;
  g.guidance_rescale = o.guidance_rescale;
  g.height = o.height;
  g.width = o.width;
  g.num_images_per_prompt = o.num_images_per_prompt;
  g.eta = o.eta;
  for (const std::string& seed : o.seeds) g.seeds.push_back(parse_seed(seed));
  if (o.clip_skip >= 0) g.clip_skip = o.clip_skip;
  KK_CHECK(o.prompt_syntax == "diffusers" || o.prompt_syntax == "a1111", "--prompt-syntax \"", o.prompt_syntax,
           "\" must be diffusers or a1111");
  g.prompt_syntax = o.prompt_syntax == "a1111" ? PromptSyntax::A1111 : PromptSyntax::Diffusers;
  g.attention = parse_attention_slicing(o.attention_slicing);
  g.vae_slicing = o.vae_slicing;
  g.vae_tiling = o.vae_tiling;
  g.vae_tile_size = o.vae_tile_size;
  g.low_memory = o.low_memory;
  g.memory_policy = parse_memory_policy(o.memory);
  if (!o.max_memory.empty()) g.max_memory = parse_memory_size(o.max_memory);
  set_generator(o, g);
  g.image_paths = o.images;
  g.mask_paths = o.masks;
  g.strength = o.strength;
  r.params = generate_params(g);
  r.params.cuda_graphs = !o.no_cuda_graphs;
  const GenerateParams& p = r.params;
  take_lora_tags(p.prompt, p.negative_prompt, r.load.lora_dir);  // bad or unknown tags: before loading

  const int num_images = int(p.prompt.size()) * p.num_images_per_prompt;
  if (!o.grid.empty()) {
    r.grid = parse_grid_spec(o.grid);
    KK_CHECK(r.grid->rows * r.grid->cols == num_images, "--grid ", o.grid, " has ", r.grid->rows * r.grid->cols,
             " cells but there are ", num_images, " images");
  }
  KK_CHECK(!o.output.empty(), "--output must name a file");
  check_output_folder(o.output, "--output");
  if (!o.save_tensors.empty()) check_output_folder(o.save_tensors, "--save-tensors");
  return r;
}

// Set by the first SIGINT; the step callback turns it into kakusan::Cancelled after the current step.
volatile std::sig_atomic_t interrupted = 0;

extern "C" void on_interrupt(int) { interrupted = 1; }

// Installs the handler for the lifetime of the generation. SA_RESETHAND: a second Ctrl-C gets the default
// action and ends the process immediately.
class InterruptGuard {
 public:
  InterruptGuard() {
    interrupted = 0;
    struct sigaction action {};
    action.sa_handler = on_interrupt;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESETHAND;
    sigaction(SIGINT, &action, &previous_);
  }
  ~InterruptGuard() { sigaction(SIGINT, &previous_, nullptr); }
  InterruptGuard(const InterruptGuard&) = delete;
  InterruptGuard& operator=(const InterruptGuard&) = delete;

 private:
  struct sigaction previous_ {};
};

constexpr int kExitInterrupted = 130;  // 128 + SIGINT, as shells report it

int run_generate(const GenerateOptions& o) {
  Request request = build_request(o);
  GenerateParams& params = request.params;
  notice_bf16_speed(request.load.dtype == WeightDType::BF16, o.device);

  ProgressBar bar(stderr, ProgressBar::detect_style(stderr, o.quiet));
  request.load.progress = bar.callback();
  params.progress = bar.callback();
  InterruptGuard interrupt_guard;
  params.callback_on_step_end = [](const StepInfo&) { return interrupted == 0; };
  auto report_interrupted = [&] {
    bar.finish();
    std::fprintf(stderr, "kakusan: interrupted; no files written\n");
    return kExitInterrupted;
  };
  std::optional<StableDiffusionPipeline> loaded;
  std::optional<GenerateResult> generated;
  try {
    loaded.emplace(StableDiffusionPipeline::load(o.model, request.load));
    if (interrupted) return report_interrupted();
    generated.emplace(loaded->generate(params));
  } catch (const Cancelled&) {
    return report_interrupted();
  }
  if (interrupted) return report_interrupted();  // Ctrl-C during the decode: still nothing is written
  StableDiffusionPipeline& pipe = *loaded;
  const GenerateResult& result = *generated;
  bar.finish();
  for (const std::string& warning : result.warnings) std::fprintf(stderr, "kakusan: warning: %s\n", warning.c_str());
  if (params.seeds.empty()) std::printf("seed: %llu\n", static_cast<unsigned long long>(result.seeds.at(0)));

  // Outputs, each written atomically (temporary file + rename).
  const std::string model = model_display_name(o.model);
  auto parameters_of = [&](size_t i) { return image_parameters(params, result, i, pipe.scheduler_name(), model,
                                                                      request.load.dtype); };
  for (size_t i = 0; i < result.images.size(); ++i) {
    const std::filesystem::path path = image_output_path(o.output, int(i));
    write_png(path, result.images[i], parameters_of(i));
    std::printf("wrote %s\n", path.string().c_str());
  }
  if (request.grid) {
    const std::filesystem::path path = grid_output_path(o.output);
    write_png(path, make_image_grid(result.images, request.grid->rows, request.grid->cols), parameters_of(0));
    std::printf("wrote %s\n", path.string().c_str());
  }
  if (!o.save_tensors.empty()) {
    const Shape latents_shape(result.latents_shape.begin(), result.latents_shape.end());
    const Shape image_shape(result.image_shape.begin(), result.image_shape.end());
    write_safetensors(o.save_tensors,
                      {{"init_noise", TensorView(const_cast<float*>(result.init_noise.data()), latents_shape)},
                       {"latents", TensorView(const_cast<float*>(result.latents.data()), latents_shape)},
                       {"images", TensorView(const_cast<float*>(result.image_tensor.data()), image_shape)}},
                      {{"format", "pt"}, {"scheduler", pipe.scheduler_name()}});
    std::printf("wrote %s\n", o.save_tensors.c_str());
  }
  return 0;
}

const bool registered = register_command({
    "generate",
    "Generate images from text prompts with a Stable Diffusion model",
    [](CLI::App& app) -> std::function<int()> {
      auto o = std::make_shared<GenerateOptions>();
      // Repeatable flags take one value per occurrence (--prompt a --prompt b).
      auto repeatable = [&](const char* name, std::vector<std::string>& values, const char* help) {
        return app.add_option(name, values, help)->allow_extra_args(false);
      };
      app.add_option("--model", o->model,
                     "diffusers model folder, Hugging Face model id (offline cache) or single-file .safetensors")
          ->required();
      app.add_option("--config", o->config, "single file: diffusers folder or model id whose configs to use");
      app.add_option("--tokenizer", o->tokenizer, "single file: tokenizer folder (default: found in the HF cache)");
      repeatable("--lora", o->loras, "LoRA FILE[:SCALE] fused into the model (repeat: they add up)");
      app.add_option("--lora-dir", o->lora_dir, "folder of the LoRAs that prompt tags <lora:NAME:WEIGHT> name");
      repeatable("--embedding", o->embeddings, "textual inversion FILE[:TOKEN] (repeatable)");
      app.add_option("--vae", o->vae, "VAE folder or model id to use instead of the model's (e.g. sd-vae-ft-mse)");
      repeatable("--prompt", o->prompts, "prompt; repeat for a batch")->required();
      repeatable("--negative-prompt", o->negative_prompts, "negative prompt: one for all prompts, or one per prompt");
      app.add_option("--steps", o->steps, "num_inference_steps")->capture_default_str();
      app.add_option("--guidance", o->guidance, "guidance_scale (CFG is on when > 1)")->capture_default_str();
      app.add_option("--guidance-rescale", o->guidance_rescale, "guidance_rescale in [0, 1]")->capture_default_str();
      app.add_option("--height", o->height, "image height, a multiple of 8 (default: the model's)");
      app.add_option("--width", o->width, "image width, a multiple of 8 (default: the model's)");
      repeatable("--seed", o->seeds,
                 "seed; once = one generator shared by all images, repeated = one generator per image");
      app.add_option("--generator", o->generator,
                     "cpu: torch.Generator(\"cpu\") seeds; cuda: torch.Generator(\"cuda\") seeds, on any device")
          ->capture_default_str();
      app.add_option("--cuda-sm-count", o->cuda_sm_count,
                     "--generator cuda: multiprocessors of the GPU to match in large draws (40: a T4)")
          ->capture_default_str();
      app.add_option("--cuda-threads-per-sm", o->cuda_threads_per_sm,
                     "--generator cuda: its max threads per multiprocessor (1024 Turing, 1536 RTX 30/40, 2048 other)")
          ->capture_default_str();
      app.add_option("--num-images-per-prompt", o->num_images_per_prompt, "images per prompt")->capture_default_str();
      app.add_option("--eta", o->eta, "DDIM eta")->capture_default_str();
      app.add_option("--scheduler", o->scheduler, "scheduler class name or alias (default: the model's)");
      repeatable("--scheduler-option", o->scheduler_options, "scheduler config override key=value (repeatable)");
      app.add_option("--attention-slicing", o->attention_slicing, "auto, a slice size, or off")->capture_default_str();
      app.add_option("--device", o->device, "where the models run: cpu (default), reference, cuda[:N] if built in");
      app.add_option("--dtype", o->dtype,
                     "weights in memory: fp32, fp16 (prefers fp16 variant files) or bf16 "
                     "(torch_dtype=torch.bfloat16: products in bf16 too); default: fp16 with --device cuda, as "
                     "diffusers' torch_dtype=torch.float16, fp32 elsewhere");
      app.add_option("--variant", o->variant, "weight file variant to read (e.g. fp16)");
      app.add_option("--threads", o->threads, "threads (0 = all cores)")->capture_default_str();
      app.add_option("--output", o->output, "PNG path; image i > 0 goes to <stem>-<i>.png")->capture_default_str();
      app.add_option("--grid", o->grid, "also write <stem>-grid.png with the images as ROWSxCOLS");
      app.add_option("--save-tensors", o->save_tensors,
                     "write float32 init_noise and latents [B,4,h,w] and images [B,H,W,3]");
      app.add_option("--clip-skip", o->clip_skip, "CLIP layers to skip (1 = the pre-final layer)");
      app.add_option("--prompt-syntax", o->prompt_syntax,
                     "diffusers (plain text, cut at 77 tokens) or a1111 ((word:1.3) weights, up to 225 tokens)")
          ->capture_default_str();
      app.add_flag("--vae-slicing", o->vae_slicing, "decode one image at a time");
      app.add_flag("--vae-tiling", o->vae_tiling, "decode large images as overlapping tiles (less memory)");
      app.add_option("--vae-tile-size", o->vae_tile_size,
                     "tile side in pixels for --vae-tiling (default: the VAE's sample_size; 256 in --low-memory)");
      app.add_flag("--low-memory", o->low_memory,
                   "least memory: stream the UNet's weights block by block from the model file, and decode "
                   "the image in 256-pixel VAE tiles (about 1 GB at 512x512 with fp16 weights)");
      app.add_option("--offload", o->offload, kOffloadHelp)->capture_default_str();
      app.add_option("--memory", o->memory,
                     "when the estimated peak exceeds the limit: auto (turn on flash attention, VAE slicing, "
                     "VAE tiling, streamed UNet weights — on a GPU model, then sequential offload —, smaller VAE "
                     "tiles until it fits), refuse, or off (no check)")
          ->capture_default_str();
      app.add_option("--max-memory", o->max_memory, "memory limit, e.g. 2G or 1500M (default: MemAvailable)");
      app.add_flag("--no-cuda-graphs", o->no_cuda_graphs,
                   "run every UNet step's kernels one by one instead of replaying a CUDA graph of the step");
      app.add_flag("--quiet,-q", o->quiet, "no progress bar");
      repeatable("--image", o->images,
                 "image-to-image: input PNG (its size rounded down to a multiple of 8, unless --height/--width "
                 "resize it); once for all images or once per image");
      repeatable("--mask-image", o->masks, "inpainting: mask PNG, white = repaint, the image's size");
      app.add_option("--strength", o->strength,
                     "with --image: how much is re-noised, in [0, 1] (default 0.8; 1.0 with --mask-image)");
      return [o] { return run_generate(*o); };
    },
});

}  // namespace
}  // namespace kakusan::cli
