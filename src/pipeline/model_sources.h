// What StableDiffusionPipeline::load() reads, wherever the model comes from: a diffusers folder (or hub id),
// or a single-file checkpoint (models/single_file.h) -- the configs, the scheduler, the tokenizer folder and
// each model component's weight source. The VAE swap (LoadOptions::vae) is applied here.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "kakusan/pipeline.h"
#include "models/component_source.h"

namespace kakusan {

struct ModelSources {
  std::filesystem::path root;        // the model folder, or the single file
  JsonConfig scheduler_config;       // scheduler_config.json as stored
  std::string scheduler_class;       // the model's scheduler class
  std::filesystem::path tokenizer_dir;
  ComponentSource text_encoder, unet, vae;
  std::string vae_origin;            // where the VAE comes from, for messages
};

// Opens configs and maps files (headers only); LoRAs are merged afterwards, by LoraSet (lora_set.h). Throws
// Error naming what is missing.
ModelSources open_model_sources(const std::string& model, const LoadOptions& options);

// The dtype a component's matrices are loaded in: the requested one, or (Auto) as its files store them. The
// loader and the LoRA merge (which must write its copies in that dtype) both ask here.
DType matrix_dtype(WeightDType requested, const WeightSource& weights);

}  // namespace kakusan
