// Loading one model component folder, as every model class does it: config.json parsed into the model's
// config, then the weight files found in the folder loaded through the model's one weight walk.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "io/json_config.h"
#include "io/model_folder.h"
#include "io/weight_store.h"
#include "nn/weights.h"

namespace kakusan {

// Most parameters a config may imply (64 G elements: 128 GB in fp16, 30x SDXL's UNet). The per-key bounds of
// the config parsers keep the module count small; this one general check catches a product of in-range
// sizes that is still absurd, before the weight walk binds anything.
inline constexpr int64_t kMaxModelParameters = int64_t(64) << 30;

// The dtype the matrices of a checkpoint are stored in (the first floating tensor of rank >= 2; f32 if none).
inline DType stored_matrix_dtype(const WeightStore& store) {
  for (const SafetensorsFile& file : store.files())
    for (const SafetensorsFile::Entry& entry : file.entries())
      if (entry.shape.rank() >= 2 && is_float(entry.dtype)) return entry.dtype;
  return DType::F32;
}

// The same for any weight source (names in sorted order; a checkpoint stores all its matrices in one dtype).
inline DType stored_matrix_dtype(const WeightSource& source) {
  for (const std::string& name : source.names()) {
    const std::optional<WeightRef> ref = source.get(name);
    if (ref && ref->view.rank() >= 2 && is_float(ref->view.dtype)) return ref->view.dtype;
  }
  return DType::F32;
}

// A loaded model with the store its weights came from: weights borrowed from the store's mapped files stay
// valid while the model lives (the mappings are shared), and the pipeline drops their pages between phases.
template <typename Model>
struct LoadedModel {
  Model model;
  WeightStore store;
};

// A model of `config`, checked against the parameter-count guard before any weight is looked at.
template <typename Model, typename Config>
Model make_checked_model(const JsonConfig& config, const std::string& component) {
  Model model(Config::parse(config));
  ParameterCounter counter;
  model.visit(counter);
  KK_CHECK(counter.elements <= kMaxModelParameters, component, ": ", config.source(), " implies ",
           counter.elements, " parameters (at most ", kMaxModelParameters, " supported)");
  return model;
}

// A model from its config and any weight source (a folder's files, a single file's renamed tensors, a LoRA
// overlay): the guard, then the one weight walk.
template <typename Model, typename Config>
Model load_model_from(const JsonConfig& config, const WeightSource& weights, DType weight_dtype,
                      const std::string& component) {
  Model model = make_checked_model<Model, Config>(config, component);
  load_weights(model, weights, weight_dtype, component);
  return model;
}

// `weight_dtype` nullopt keeps the matrices in the dtype the files store them in. `library` picks the weight
// file names ("diffusers" or "transformers", see find_weight_files); `component` names the model in errors
// ("UNet2DConditionModel: missing tensor ...").
template <typename Model, typename Config>
LoadedModel<Model> load_model_and_store(const std::filesystem::path& dir, std::optional<DType> weight_dtype,
                                        const std::string& variant, const std::string& library,
                                        const std::string& component) {
  Model model = make_checked_model<Model, Config>(JsonConfig::load(dir / "config.json"), component);
  WeightStore store = WeightStore::open(find_weight_files(dir, variant, library).files);
  load_weights(model, store, weight_dtype.value_or(stored_matrix_dtype(store)), component);
  return LoadedModel<Model>{std::move(model), std::move(store)};
}

template <typename Model, typename Config>
Model load_model_folder(const std::filesystem::path& dir, DType weight_dtype, const std::string& variant,
                        const std::string& library, const std::string& component) {
  return load_model_and_store<Model, Config>(dir, weight_dtype, variant, library, component).model;
}

}  // namespace kakusan
