// kakusan bench: the speed and memory of one Stable Diffusion run on this machine, phase by phase.
//
//   kakusan bench --model DIR [--height H --width W] [--steps N] [--batch B] [--dtype fp32|fp16|bf16] [--device D]
//                 [--threads T] [--scheduler NAME] [--guidance G] [--vae DIR] [--attention auto|full|sliced|flash]
//                 [--strength S] [--cuda-graphs on|off] [--offload none|model|sequential] [--profile]
//
// Prints a table (text encoder, [VAE encode with --strength,] one UNet step of the CFG batch, VAE decode,
// total: seconds, CPU seconds,
// GFLOP/s, % of this machine's measured fp32 peak, peak RSS per phase) and then one line of JSON with the
// same figures. Progress goes to stderr. No tokenizer is needed (the prompt is fixed token ids), so a
// random-weights model from `kakusan make-random-model` works.
#include <cstdio>
#include <map>
#include <memory>

#include "bench_runner.h"
#include "bf16_notice.h"
#include "command.h"
#include "offload_option.h"

namespace kakusan::cli {
namespace {

struct BenchCliOptions {
  BenchOptions bench;
  std::string dtype;  // empty: fp16 on CUDA, fp32 elsewhere
  std::string attention = "auto";
  std::string cuda_graphs = "on";
  std::string offload = "none";
};

int run_bench_command(BenchCliOptions& o) {
  // Not given: fp16 on a CUDA device (the tutorial's torch_dtype=torch.float16), fp32 elsewhere.
  o.bench.offload = offload_from_name(o.offload);
  if (o.dtype.empty()) o.dtype = o.bench.device.rfind("cuda", 0) == 0 ? "fp16" : "fp32";
  o.bench.weight_dtype = o.dtype == "fp16" ? DType::F16 : o.dtype == "bf16" ? DType::BF16 : DType::F32;
  notice_bf16_speed(o.bench.weight_dtype == DType::BF16, o.bench.device);
  static const std::map<std::string, AttentionStrategy> strategies{{"auto", AttentionStrategy::Auto},
                                                                   {"full", AttentionStrategy::Full},
                                                                   {"sliced", AttentionStrategy::Sliced},
                                                                   {"flash", AttentionStrategy::Flash}};
  o.bench.attention = strategies.at(o.attention);
  o.bench.cuda_graphs = o.cuda_graphs == "on";
  const BenchResult result = run_bench(o.bench, [](std::string_view line) {
    std::fprintf(stderr, "bench: %.*s\n", int(line.size()), line.data());
  });
  std::printf("%s\n%s\n", bench_table(result).c_str(), bench_json(result).c_str());
  return 0;
}

const bool registered = register_command({
    "bench",
    "Time and profile one Stable Diffusion run (text encoder, UNet step, VAE decode): seconds, GFLOP/s, % of "
    "this machine's peak, peak RSS",
    [](CLI::App& app) -> std::function<int()> {
      auto o = std::make_shared<BenchCliOptions>();
      app.add_option("--model", o->bench.model, "Model folder or hub id (a diffusers layout)")->required();
      app.add_option("--height", o->bench.height, "Image height (default: the UNet's sample_size x 8)")
          ->check(CLI::PositiveNumber);
      app.add_option("--width", o->bench.width, "Image width (default: the UNet's sample_size x 8)")
          ->check(CLI::PositiveNumber);
      app.add_option("--steps", o->bench.steps,
                     "Also run and time a whole denoising loop of N steps (default: the total is estimated for " +
                         std::to_string(kEstimatedSteps) + " steps)")
          ->check(CLI::PositiveNumber);
      app.add_option("--batch", o->bench.batch, "Images per run; the UNet runs twice as many with CFG")
          ->check(CLI::PositiveNumber);
      app.add_option("--guidance", o->bench.guidance,
                     "guidance_scale of the loop (default 7.5); <= 1 runs without classifier-free guidance");
      app.add_option("--vae", o->bench.vae, "A VAE folder (AutoencoderKL or AutoencoderTiny, e.g. TAESD) or model "
                     "folder replacing the model's vae/");
      app.add_option("--device", o->bench.device, "Where the models run: cpu (default), reference, cuda[:N] if built "
                     "in (with cuda the JSON adds gpu_peak_mb and gpu_used_mb)");
      app.add_option("--dtype", o->dtype, "Weights in memory; bf16 also computes the products in bf16 (default: fp16 "
                     "with --device cuda, fp32 elsewhere)")
          ->check(CLI::IsMember({"fp32", "fp16", "bf16"}));
      app.add_option("--offload", o->offload, kOffloadHelp)->capture_default_str();
      app.add_option("--threads", o->bench.threads, "Threads (default: all cores)")->check(CLI::PositiveNumber);
      app.add_option("--scheduler", o->bench.scheduler, "Scheduler class or alias for --steps (default: the "
                     "model's)");
      app.add_option("--strength", o->bench.strength,
                     "Time an image-to-image run at this strength: adds a VAE encode phase, and the loop of --steps "
                     "runs int(steps x strength) steps (default 0: text-to-image)");
      app.add_option("--attention", o->attention, "Attention kernel")
          ->check(CLI::IsMember({"auto", "full", "sliced", "flash"}));
      app.add_option("--cuda-graphs", o->cuda_graphs, "Capture the UNet step as a CUDA graph on its second pass "
                     "and replay it (default on; the JSON's graph_replays counts the replayed passes)")
          ->check(CLI::IsMember({"on", "off"}));
      app.add_flag("--profile", o->bench.profile, "After the timing, run one more UNet pass op by op and report "
                   "each (op, shapes) row's time (on a GPU each op is waited for): a table on stderr, the costliest "
                   "rows in the JSON's op_profile");
      return [o] { return run_bench_command(*o); };
    },
});

}  // namespace
}  // namespace kakusan::cli
