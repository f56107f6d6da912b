// GenerateParams' memory levers in the models' own terms (one translation for the planner and the run).
#pragma once

#include "backend/backend.h"
#include "kakusan/pipeline.h"
#include "models/autoencoder_kl.h"

namespace kakusan {

// The precision of a component's attention products, from the dtype its weight matrices are held in
// (backend.h: products take the precision of their weight). bf16 weights: bf16, as torch_dtype=torch.bfloat16
// computes attention. f16 weights: f32, since the CPU has no f16 arithmetic and fp16 there only saves memory
// (a backend with f16 arithmetic would map F16 to F16 here).
DType attention_precision(DType weights);
// The attention of a component whose matrices are `weights` (strategy and slicing from `options`).
AttentionParams attention_params(const AttentionOptions& options, DType weights);
VaeMemoryOptions vae_memory_options(const GenerateParams& params);

}  // namespace kakusan
