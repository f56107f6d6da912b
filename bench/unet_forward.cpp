// UNet / VAE forward time on a random-weights model built in memory from a built-in config (no files).
//
//   bench_unet_forward [--config sd15|sd21|tiny] [--size 256] [--batch 2] [--iters 3] [--dtype fp32|fp16|bf16]
//                      [--strategy auto|full|sliced|flash] [--threads N] [--vae] [--taesd] [--no-unet]
//
// batch 2 is one classifier-free-guidance step of one image. Prints one table row per measured component:
// wall time of the first pass (which sizes the arena) and of later passes, and the process CPU time per later
// pass (on a shared, oversubscribed machine CPU time with --threads 1 is the stable number). bf16 means bf16
// weights and attention precision BF16 (what the pipeline sets for a bf16 model). --taesd adds TAESD's decode
// (AutoencoderTiny, madebyollin/taesd's config); --no-unet leaves the UNet out.
#include <chrono>
#include <ctime>
#include <cstdio>
#include <cstring>
#include <string>

#include "core/clock.h"
#include "core/thread_pool.h"
#include "models/autoencoder_kl.h"
#include "models/autoencoder_tiny.h"
#include "models/random_model.h"
#include "models/unet_2d_condition.h"

using namespace kakusan;

namespace {

AttentionStrategy parse_strategy(const std::string& s) {
  if (s == "full") return AttentionStrategy::Full;
  if (s == "sliced") return AttentionStrategy::Sliced;
  if (s == "flash") return AttentionStrategy::Flash;
  return AttentionStrategy::Auto;
}

}  // namespace

int main(int argc, char** argv) {
  std::string config = "sd15", dtype_name = "fp32", strategy = "auto";
  int size = 256, batch = 2, iters = 3, threads = 0;
  bool with_vae = false, with_taesd = false, with_unet = true;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--config") config = next();
    else if (a == "--size") size = std::stoi(next());
    else if (a == "--batch") batch = std::stoi(next());
    else if (a == "--iters") iters = std::stoi(next());
    else if (a == "--dtype") dtype_name = next();
    else if (a == "--strategy") strategy = next();
    else if (a == "--threads") threads = std::stoi(next());
    else if (a == "--vae") with_vae = true;
    else if (a == "--taesd") with_taesd = true;
    else if (a == "--no-unet") with_unet = false;
    else {
      std::fprintf(stderr, "unknown option %s\n", a.c_str());
      return 2;
    }
  }
  try {
    if (threads > 0) set_num_threads(threads);
    const DType dtype = dtype_name == "fp16" ? DType::F16 : dtype_name == "bf16" ? DType::BF16 : DType::F32;
    const RandomModelSpec spec = RandomModelSpec::builtin(config);
    const UNet2DConditionConfig ucfg = UNet2DConditionConfig::parse(JsonConfig(spec.unet, "unet"));
    UNet2DConditionModel unet(ucfg);
    randomize_weights(unet, 0, dtype);

    Arena arena;
    AttentionParams attention;
    attention.strategy = parse_strategy(strategy);
    if (dtype == DType::BF16) attention.precision = DType::BF16;
    Context ctx{cpu_backend(), arena, attention};
    Generator g(0);
    const int64_t latent = size / 8;
    const Tensor sample = g.randn({batch, ucfg.in_channels, latent, latent});
    const Tensor context = g.randn({batch, 77, ucfg.cross_attention_dim});
    const Tensor t = Tensor::full({1}, 981.0f);

    std::printf("| component | config | image | batch | weights | attention | threads | first (s) | steady (s) "
                "| CPU (s) | arena peak (MiB) |\n");
    std::printf("|---|---|---|---|---|---|---|---|---|---|---|\n");
    auto start = Clock::now();
    if (with_unet) {
      Tensor out = unet.forward(ctx, sample, t, context);
      const double first = seconds_since(start);
      arena.reset();
      start = Clock::now();
      const std::clock_t cpu_start = std::clock();
      for (int i = 0; i < iters; ++i) out = unet.forward(ctx, sample, t, context);
      const double steady = seconds_since(start) / iters;
      const double cpu = double(std::clock() - cpu_start) / CLOCKS_PER_SEC / iters;
      std::printf("| unet | %s | %dx%d | %d | %s | %s | %d | %.3f | %.3f | %.3f | %.1f |\n", config.c_str(), size,
                  size, batch, dtype_name.c_str(), strategy.c_str(), num_threads(), first, steady, cpu,
                  arena.peak_bytes() / 1048576.0);
    }

    if (with_taesd) {
      AutoencoderTiny taesd(AutoencoderTinyConfig::parse(JsonConfig(taesd_config(), "taesd")));
      randomize_weights(taesd, 2, dtype);
      const Tensor z = g.randn({1, 4, latent, latent});
      Arena taesd_arena;
      Context tctx{cpu_backend(), taesd_arena, attention};
      Tensor image = taesd.decode(tctx, z);  // sizes the arena
      taesd_arena.reset();
      start = Clock::now();
      const std::clock_t tcpu_start = std::clock();
      for (int i = 0; i < iters; ++i) image = taesd.decode(tctx, z);
      std::printf("| taesd decode | taesd | %dx%d | 1 | %s | - | %d | - | %.3f | %.3f | %.1f |\n", size, size,
                  dtype_name.c_str(), num_threads(), seconds_since(start) / iters,
                  double(std::clock() - tcpu_start) / CLOCKS_PER_SEC / iters, taesd_arena.peak_bytes() / 1048576.0);
    }

    if (with_vae) {
      AutoencoderKL vae(AutoencoderKLConfig::parse(JsonConfig(spec.vae, "vae")));
      randomize_weights(vae, 1, dtype);
      const Tensor z = g.randn({1, 4, latent, latent});
      Arena vae_arena;
      Context vctx{cpu_backend(), vae_arena, attention};
      start = Clock::now();
      Tensor image = vae.decode(vctx, z);
      const double vfirst = seconds_since(start);
      vae_arena.reset();
      start = Clock::now();
      const std::clock_t vcpu_start = std::clock();
      image = vae.decode(vctx, z);
      const double vcpu = double(std::clock() - vcpu_start) / CLOCKS_PER_SEC;
      std::printf("| vae decode | %s | %dx%d | 1 | %s | %s | %d | %.3f | %.3f | %.3f | %.1f |\n", config.c_str(), size,
                  size, dtype_name.c_str(), strategy.c_str(), num_threads(), vfirst, seconds_since(start), vcpu,
                  vae_arena.peak_bytes() / 1048576.0);
    }
  } catch (const Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
