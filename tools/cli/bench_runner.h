// `kakusan bench`: how fast and how lean one Stable Diffusion run is on this machine, phase by phase.
//
//   BenchResult r = run_bench({.model = "/tmp/sd15", .height = 512, .width = 512});
//   std::cout << bench_table(r) << bench_json(r) << "\n";
//
// Each phase loads only its component (text encoder, then UNet, then VAE; the previous one is released), runs
// one pass through a ProfilingBackend to count the FLOPs of every heavy op from its shapes (that pass also
// warms the arena up), then times passes on cpu_backend(). GFLOP/s are compared with this machine's fp32
// peak, measured by an FMA loop on the same number of threads. No tokenizer is needed: the prompt is a fixed
// sequence of token ids.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "backend/backend.h"
#include "core/dtype.h"
#include "kakusan/pipeline.h"

namespace kakusan {

struct BenchOptions {
  std::string model;             // a model folder or hub id (resolved offline)
  std::string device = "cpu";    // where the models run (backend_for_device): cpu, reference, cuda[:N]
  int height = 0, width = 0;     // 0: the UNet's sample_size x the VAE's scale factor
  int steps = 0;                 // > 0: also run a whole denoising loop of this many steps and time it
  int batch = 1;                 // images per prompt; the UNet runs 2 x batch with classifier-free guidance
  double guidance = 7.5;         // guidance_scale; <= 1 runs without classifier-free guidance (UNet batch = batch)
  std::string vae;               // a VAE folder or model folder replacing the model's vae/ (AutoencoderTiny too)
  DType weight_dtype = DType::F32;
  int threads = 0;               // 0: the thread pool's default
  std::string scheduler;         // for the loop of `steps`; empty: the model's scheduler
  AttentionStrategy attention = AttentionStrategy::Auto;
  // > 0: an image-to-image run at this strength: a VAE encode phase (a synthetic image, sampled from the
  // latent distribution) and a loop that starts where get_timesteps puts it.
  double strength = 0;
  // Capture the UNet step once and replay it (CUDA graphs; the host backends run every step eagerly).
  bool cuda_graphs = true;
  // After the timing, one more UNet pass op by op (ProfilingBackend; on a device each op waited for).
  bool profile = false;
  // Device backends: none uploads each phase's component for good (as the pipeline at load); model holds a
  // device copy for the phase; sequential too, the UNet's block by block within each pass. The host loads one
  // component per phase; with none the device keeps each one to the end, as a pipeline holds all three.
  Offload offload = Offload::None;
};

// Without `steps`, the total is estimated for this many UNet steps.
inline constexpr int kEstimatedSteps = 20;

struct PhaseFigures {
  double seconds = 0;      // wall time of the timed pass
  double cpu_seconds = 0;  // process CPU time of the same (the stable number on a shared machine)
  double flops = 0;        // counted from the ops' shapes
  double load_seconds = 0;
  double peak_rss_mb = 0;  // high-water mark of the resident set while the phase loaded and ran
  double arena_mb = 0;     // of which activations: the arena's peak
  double scratch_mb = 0;   // and the backend's kernel scratch (released as the phase ends)
  double gflops() const { return seconds > 0 ? flops / seconds / 1e9 : 0; }
};

struct BenchResult {
  int height = 0, width = 0, batch = 1, threads = 1;
  int steps = 0;                // the loop's steps, or kEstimatedSteps when the total is estimated
  int unet_calls = 0;           // UNet passes of the loop (2 per step for second-order schedulers)
  bool total_measured = false;  // true: total is text encoder + measured loop + VAE decode
  std::string weight_dtype, attention, scheduler;
  double guidance = 7.5;
  std::string vae_class;        // AutoencoderKL or AutoencoderTiny
  double peak_gflops = 0;       // measured fp32 FMA peak on `threads` threads
  std::string vector_isa;
  double load_average = -1;     // 1-minute load average when the bench started (-1: unknown)
  double strength = 0;          // > 0: image-to-image (vae_encode was measured)
  PhaseFigures text_encoder, vae_encode, unet_step, vae_decode, total;
  std::string device = "cpu";
  Offload offload = Offload::None;
  double gpu_peak_mb = -1;      // CUDA: the most the backend's allocator held (weights, arenas, scratch)
  double gpu_used_mb = -1;      // CUDA: the device's used memory at the UNet's end (context and pool too)
  bool cuda_graphs = true;      // asked for
  int graph_replays = 0;        // UNet passes that ran as a replayed graph
  std::string graph_gave_up;    // why capturing was given up (empty: it was not)
  // With profile: the UNet pass's (op, shapes) rows, most expensive first, and the pass's sum of op times.
  struct OpRow {
    std::string op;
    int64_t calls = 0;
    double ms = 0;
  };
  std::vector<OpRow> op_profile;
  double op_profile_ms = 0;
  double peak_rss_mb = 0;
  bool rss_per_phase = true;    // false: the kernel cannot reset the high-water mark, figures are cumulative
};

// Throws Error for a bad model folder, size, batch or scheduler name. `log` receives one line per phase.
BenchResult run_bench(const BenchOptions& options, const std::function<void(std::string_view)>& log = {});

// A markdown table of the phases, with the run's settings above it.
std::string bench_table(const BenchResult& result);
// One line of JSON with the same figures: text_encoder_s, unet_step_s, vae_decode_s, total_s, peak_rss_mb,
// gflops_unet, peak_gflops, then CPU times, per-phase RSS and GFLOP/s, and the settings.
std::string bench_json(const BenchResult& result);

}  // namespace kakusan
