// The LoRAs fused into a loaded pipeline's UNet and text encoder, and how a generation changes them.
//
// At load the `--lora` files are merged as the components are read (only the touched weights get owned,
// merged copies). A generation's set is those plus its prompt's `<lora:NAME:W>` tags (lora_tags.h), added up as
// diffusers' multi-adapter set_adapters (W + sum_i s_i dW_i). When the set differs from the one the weights hold,
// only the weights either set touches are re-bound: merged anew from the unmerged source (the mapped files) and
// the new set, or given back their mapped view when no LoRA touches them any more, which frees the old copy.
// An unchanged set costs nothing. The result is the same, bit for bit, as loading with that set.
#pragma once

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "kakusan/pipeline.h"
#include "models/lora_merge.h"
#include "models/clip_text_model.h"
#include "models/unet_2d_condition.h"
#include "pipeline/model_sources.h"

namespace kakusan {

class LoraSet {
 public:
  // Before the components are loaded (after textual inversion has added its tokens): remembers the unmerged
  // weight sources and the dtype the models keep their matrices in, and merges `options.loras` into `sources`.
  void prepare(ModelSources& sources, const LoadOptions& options);

  // The load-time LoRAs followed by `extra` (a generation's tags).
  std::vector<LoadOptions::Lora> with(const std::vector<LoadOptions::Lora>& extra) const;

  // Whether the models' weights are those of `wanted` already.
  bool is_current(const std::vector<LoadOptions::Lora>& wanted) const;

  // Makes the models' weights those of `wanted`; false when they already were (nothing done). The weights the
  // previous set touched get their mapped views back first, which frees their copies, so the old and the new
  // merged copies are never held at once. Throws Error (a bad file, a layer that fits nothing, a merged value
  // out of range) with the previous set in place again (merged anew: an error costs time, not memory).
  // The models' parameters must be their host tensors (no device copy held: DeviceWeights released); the
  // merged weights are what a device copy made afterwards holds.
  bool use(const std::vector<LoadOptions::Lora>& wanted, UNet2DConditionModel& unet, ClipTextModel& text_encoder);

  const std::vector<LoadOptions::Lora>& current() const { return current_; }

 private:
  struct Part {
    const char* component;
    std::shared_ptr<const WeightSource> base;  // without LoRAs
    DType dtype = DType::F32;                  // the model's matrix dtype: merged copies are kept in it
    std::set<std::string> touched;             // weights now bound to merged copies
  };
  // `part`'s touched weights back to their unmerged views, then those of `adapters` merged and bound.
  template <typename Model>
  static void rebind_part(Model& model, Part& part, const std::vector<LoraAdapter>& adapters);
  void rebind_all(UNet2DConditionModel& unet, ClipTextModel& text_encoder, const std::vector<LoraAdapter>& adapters);

  Part unet_{"unet", nullptr, DType::F32, {}}, text_encoder_{"text_encoder", nullptr, DType::F32, {}};
  std::vector<LoadOptions::Lora> load_loras_;
  std::vector<LoadOptions::Lora> current_;
};

}  // namespace kakusan
