// LoRA fused into a model component's weights, as diffusers' pipe.load_lora_weights(FILE) then
// pipe.fuse_lora(lora_scale=S) does, and several LoRAs added up as set_adapters([a, b], adapter_weights=[sa, sb]):
//
//   W' = W + sum_i  s_i * (alpha_i / r_i) * up_i . down_i      (conv kernels: up 1x1, down kh x kw, flattened)
//
// Only the touched tensors get a private merged copy, in the model's dtype, through an OverlaySource; the rest
// stay borrowed from the file mappings. Errors name the LoRA file and layer (a layer that matches no weight of
// the model, a shape that does not fit it).
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "io/lora_file.h"
#include "io/weight_source.h"

namespace kakusan {

struct LoraAdapter {
  std::shared_ptr<const LoraFile> file;
  float scale = 1.0f;
};

// The weights of `base` that the layers of `adapters` whose component is `component` ("unet" / "text_encoder")
// touch, merged, as copies of dtype `dtype` (sorted by name; empty when no adapter touches the component).
// Throws Error when a merged value does not fit `dtype` (a huge scale), as well as for unmatched layers.
std::vector<std::pair<std::string, Tensor>> merge_lora_weights(const WeightSource& base, const std::string& component,
                                                               const std::vector<LoraAdapter>& adapters, DType dtype);

// `base` with those copies in place of its own (an OverlaySource); `base` itself when none is touched.
std::shared_ptr<const WeightSource> merge_loras(std::shared_ptr<const WeightSource> base, const std::string& component,
                                                const std::vector<LoraAdapter>& adapters, DType dtype);

}  // namespace kakusan
