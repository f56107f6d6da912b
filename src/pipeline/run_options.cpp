#include "pipeline/run_options.h"

namespace kakusan {

DType attention_precision(DType weights, const Backend& backend) {
  if (weights == DType::BF16) return DType::BF16;
  return weights == DType::F16 && backend.has_f16_products() ? DType::F16 : DType::F32;
}

AttentionParams attention_params(const AttentionOptions& options, DType weights, const Backend& backend) {
  AttentionParams params;
  params.precision = attention_precision(weights, backend);
  switch (options.mode) {
    case AttentionOptions::Mode::Auto: params.strategy = AttentionStrategy::Auto; break;
    case AttentionOptions::Mode::Full: params.strategy = AttentionStrategy::Full; break;
    case AttentionOptions::Mode::Sliced: params.strategy = AttentionStrategy::Sliced; break;
    case AttentionOptions::Mode::Flash: params.strategy = AttentionStrategy::Flash; break;
  }
  params.slice_size = options.slice_size;
  return params;
}

VaeMemoryOptions vae_memory_options(const GenerateParams& params) {
  VaeMemoryOptions memory;
  memory.slicing = params.vae_slicing;
  memory.tiling = params.vae_tiling;
  memory.tile_size = params.vae_tile_size;
  return memory;
}

Offload offload_from_name(std::string_view name) {
  for (Offload o : {Offload::None, Offload::Model, Offload::Sequential})
    if (name == offload_name(o)) return o;
  fail("offload \"", name, "\" is not none, model or sequential");
}

const char* offload_name(Offload offload) {
  switch (offload) {
    case Offload::None: return "none";
    case Offload::Model: return "model";
    case Offload::Sequential: return "sequential";
  }
  return "none";
}

}  // namespace kakusan
