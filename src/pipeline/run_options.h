// GenerateParams' memory levers in the models' own terms (one translation for the planner and the run).
#pragma once

#include "backend/backend.h"
#include "kakusan/pipeline.h"
#include "models/autoencoder_kl.h"

namespace kakusan {

// The precision of a component's attention products on `backend`, from the dtype its weight matrices are held
// in (backend.h: products take the precision of their weight). bf16 weights: bf16, as torch_dtype=torch.bfloat16
// computes attention. f16 weights: f16 where the backend has f16 products (CUDA), else f32 (the CPU has no f16
// arithmetic; fp16 there only saves memory).
DType attention_precision(DType weights, const Backend& backend);
// The attention of a component whose matrices are `weights` (strategy and slicing from `options`).
AttentionParams attention_params(const AttentionOptions& options, DType weights, const Backend& backend);
VaeMemoryOptions vae_memory_options(const GenerateParams& params);

}  // namespace kakusan
