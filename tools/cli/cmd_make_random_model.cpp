// kakusan make-random-model: a random-weights model folder in exact diffusers layout, for benchmarks.
#include <cstdio>
#include <filesystem>

#include "command.h"
#include "core/error.h"
#include "models/random_model.h"

namespace kakusan::cli {
namespace {

struct Options {
  std::string config = "sd15";
  std::string out;
  std::string dtype = "fp32";
  uint64_t seed = 0;
};

DType parse_weight_dtype(const std::string& name) {
  if (name == "fp32" || name == "float32") return DType::F32;
  if (name == "fp16" || name == "float16") return DType::F16;
  if (name == "bf16" || name == "bfloat16") return DType::BF16;
  fail("--dtype \"", name, "\" is not one of fp32, fp16, bf16");
}

int run(const Options& o) {
  const DType dtype = parse_weight_dtype(o.dtype);
  if (o.config == "taesd") {  // a VAE folder on its own, for --vae
    const int64_t tensors = make_random_autoencoder_tiny(taesd_config(), o.out, dtype, o.seed);
    std::printf("wrote %s: AutoencoderTiny (TAESD), %lld tensors (%s); use it as --vae %s\n", o.out.c_str(),
                static_cast<long long>(tensors), o.dtype.c_str(), o.out.c_str());
    return 0;
  }
  bool builtin = false;
  for (const std::string& name : RandomModelSpec::builtin_names()) builtin |= name == o.config;
  KK_CHECK(builtin || std::filesystem::exists(o.config), "--config \"", o.config,
           "\" is neither a built-in config (sd15, sd21, tiny, sd15-inpaint, tiny-inpaint, taesd) nor an existing "
           "JSON file or model folder");
  const RandomModelSpec spec = builtin ? RandomModelSpec::builtin(o.config) : RandomModelSpec::from_path(o.config);
  const RandomModelSummary s = make_random_model(spec, o.out, dtype, o.seed);
  std::printf("wrote %s: unet %lld tensors, vae %lld tensors, text_encoder %lld tensors (%s)\n", o.out.c_str(),
              static_cast<long long>(s.unet_tensors), static_cast<long long>(s.vae_tensors),
              static_cast<long long>(s.text_encoder_tensors), o.dtype.c_str());
  std::printf("tokenizer files are not generated: copy tokenizer/ from a real model folder\n");
  return 0;
}

const bool registered = register_command({
    "make-random-model",
    "Write a random-weights model folder in diffusers layout (sd15, sd21, tiny, sd15-inpaint, tiny-inpaint, or a "
    "config file/folder), or a TAESD VAE folder (taesd)",
    [](CLI::App& app) -> std::function<int()> {
      auto options = std::make_shared<Options>();
      app.add_option("--config", options->config,
                     "sd15 | sd21 | tiny | sd15-inpaint | tiny-inpaint (9-channel UNet) | taesd (a VAE folder) | "
                     "JSON file | model folder")
          ->capture_default_str();
      app.add_option("--out", options->out, "output folder")->required();
      app.add_option("--dtype", options->dtype, "fp32 | fp16 | bf16")->capture_default_str();
      app.add_option("--seed", options->seed, "random seed")->capture_default_str();
      return [options] { return run(*options); };
    },
});

}  // namespace
}  // namespace kakusan::cli
