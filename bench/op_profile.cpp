// bench_op_profile: where a UNet (or VAE decoder) forward pass spends its time, op by op and shape by shape,
// through ProfilingBackend around the CPU backend. Random weights built in memory, no files.
//
//   bench_op_profile [--config sd15|sd21|tiny] [--size 512] [--batch 2] [--vae] [--strategy auto|full|sliced|flash]
//                    [--dtype fp32|fp16]
#include <cstdio>
#include <string>

#include "backend/profiling_backend.h"
#include "core/thread_pool.h"
#include "models/autoencoder_kl.h"
#include "models/random_model.h"
#include "models/unet_2d_condition.h"

using namespace kakusan;

int main(int argc, char** argv) {
  std::string config = "sd15", strategy = "auto", dtype_name = "fp32";
  int size = 512, batch = 2;
  bool vae_only = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--config") config = next();
    else if (a == "--size") size = std::stoi(next());
    else if (a == "--batch") batch = std::stoi(next());
    else if (a == "--strategy") strategy = next();
    else if (a == "--vae") vae_only = true;
    else if (a == "--dtype") dtype_name = next();
    else {
      std::fprintf(stderr, "usage: %s [--config sd15|sd21|tiny] [--size N] [--batch N] [--vae] [--strategy S] [--dtype fp32|fp16]\n",
                   argv[0]);
      return 2;
    }
  }
  try {
    AttentionParams attention;
    attention.strategy = strategy == "full"     ? AttentionStrategy::Full
                         : strategy == "sliced" ? AttentionStrategy::Sliced
                         : strategy == "flash"  ? AttentionStrategy::Flash
                                                : AttentionStrategy::Auto;
    const DType dtype = dtype_name == "fp16" ? DType::F16 : DType::F32;
    const RandomModelSpec spec = RandomModelSpec::builtin(config);
    ProfilingBackend profiler(cpu_backend());
    Arena arena;
    Context ctx{profiler, arena, attention};
    Generator g(0);
    const int64_t latent = size / 8;
    if (vae_only) {
      AutoencoderKL vae(AutoencoderKLConfig::parse(JsonConfig(spec.vae, "vae")));
      randomize_weights(vae, 1, dtype);
      const Tensor z = g.randn({1, 4, latent, latent});
      Tensor image = vae.decode(ctx, z);  // warm-up: scratch buffers and arena grow here
      arena.reset();                      // one block of the peak size from now on
      profiler.reset();
      image = vae.decode(ctx, z);
    } else {
      const UNet2DConditionConfig ucfg = UNet2DConditionConfig::parse(JsonConfig(spec.unet, "unet"));
      UNet2DConditionModel unet(ucfg);
      randomize_weights(unet, 0, dtype);
      const Tensor sample = g.randn({batch, ucfg.in_channels, latent, latent});
      const Tensor context = g.randn({batch, 77, ucfg.cross_attention_dim});
      const Tensor t = Tensor::full({1}, 981.0f);
      Tensor out = unet.forward(ctx, sample, t, context);  // warm-up, as above
      arena.reset();
      profiler.reset();
      out = unet.forward(ctx, sample, t, context);
    }
    std::printf("## %s %s %dx%d batch %d, %s weights, %d threads, attention %s\n\n%s", config.c_str(),
                vae_only ? "vae decode" : "unet", size, size, vae_only ? 1 : batch, dtype_name.c_str(), num_threads(),
                strategy.c_str(), profiler.report().c_str());
  } catch (const Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
