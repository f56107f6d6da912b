// Random-weights models in exact diffusers layout, for benchmarks and tests without downloading 4 GB.
//
// Parameters come from the same visit() walk that loads checkpoints, so names and shapes are by construction
// those diffusers writes for the config. Values follow PyTorch's default init closely enough for activations
// of a sensible size: uniform(±1/sqrt(fan_in)) for weight matrices and kernels and for the bias that follows
// each, ones for norm scales, zeros for norm shifts.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/generator.h"
#include "nn/weights.h"

namespace kakusan {

// Produces each parameter in walk order from one seeded generator.
class RandomParameters {
 public:
  explicit RandomParameters(uint64_t seed) : generator_(seed) {}
  // `name` is the full dotted name; a rank-1 "bias" right after a rank >= 2 weight of the same module is
  // that layer's bias, any other rank-1 tensor belongs to a norm.
  Tensor make(const std::string& name, const Shape& shape, DType dtype);

 private:
  Generator generator_;
  std::string last_weight_module_;
  int64_t last_fan_in_ = 0;
};

// Allocates and fills every parameter of a module in memory (a random model without files).
class RandomWeightInitializer : public WeightVisitor {
 public:
  RandomWeightInitializer(uint64_t seed, DType dtype) : params_(seed), dtype_(dtype) {}
  void tensor(const std::string& name, Tensor& param, const Shape& shape) override {
    param = params_.make(name, shape, shape.rank() >= 2 ? dtype_ : DType::F32);
  }

 private:
  RandomParameters params_;
  DType dtype_;
};

template <typename Module>
void randomize_weights(Module& module, uint64_t seed, DType weight_dtype = DType::F32) {
  RandomWeightInitializer init(seed, weight_dtype);
  module.visit(init);
}

// Writes one safetensors file with a random value for every parameter `walk` visits, one tensor in memory at a
// time (an SD1.5 UNet is 3.4 GB in fp32). All tensors are stored in `dtype`, as save_pretrained does after
// .to(dtype). Returns the number of tensors written.
int64_t write_random_weights(const std::function<void(WeightVisitor&)>& walk, const std::filesystem::path& file,
                             uint64_t seed, DType dtype);

// The configs of one model folder: model_index.json and each component's config.
struct RandomModelSpec {
  nlohmann::json model_index, unet, vae, text_encoder, scheduler;

  // "sd15" (runwayml/stable-diffusion-v1-5), "sd21" (stabilityai/stable-diffusion-2-1), "tiny" (the golden
  // kit's tiny-sd), and "sd15-inpaint" / "tiny-inpaint": the same with a 9-channel inpainting UNet
  // (runwayml/stable-diffusion-inpainting). Throws Error listing the choices.
  static RandomModelSpec builtin(const std::string& name);
  // A JSON file {"unet": {...}, "vae": {...}, "text_encoder": {...}, "scheduler": {...}} (missing parts are
  // taken from sd15, "model_index" optional), or an existing model folder whose configs are reused.
  static RandomModelSpec from_path(const std::filesystem::path& path);
  static std::vector<std::string> builtin_names() { return {"sd15", "sd21", "tiny", "sd15-inpaint", "tiny-inpaint"}; }
};

struct RandomModelSummary {
  int64_t unet_tensors = 0, vae_tensors = 0, text_encoder_tensors = 0;
};

// Writes <out>/model_index.json, unet/, vae/, text_encoder/ (config.json + weights) and
// scheduler/scheduler_config.json. Tokenizer files are not generated: copy them from a real model.
RandomModelSummary make_random_model(const RandomModelSpec& spec, const std::filesystem::path& out, DType dtype,
                                     uint64_t seed = 0);

// madebyollin/taesd's config.json (AutoencoderTiny for SD 1.x/2.x latents).
nlohmann::json taesd_config();
// Writes a random-weights AutoencoderTiny folder, <out>/config.json + diffusion_pytorch_model.safetensors,
// usable as `--vae <out>`. Returns the number of tensors written.
int64_t make_random_autoencoder_tiny(const nlohmann::json& config, const std::filesystem::path& out, DType dtype,
                                     uint64_t seed = 0);

}  // namespace kakusan
