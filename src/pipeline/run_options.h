// GenerateParams' memory levers in the models' own terms (one translation for the planner and the run).
#pragma once

#include "backend/backend.h"
#include "kakusan/pipeline.h"
#include "models/autoencoder_kl.h"

namespace kakusan {

AttentionParams attention_params(const AttentionOptions& options);
VaeMemoryOptions vae_memory_options(const GenerateParams& params);

}  // namespace kakusan
