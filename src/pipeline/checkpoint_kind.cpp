#include "pipeline/checkpoint_kind.h"

#include <map>
#include <set>

#include "core/error.h"
#include "io/lora_file.h"
#include "io/weight_store.h"
#include "models/single_file.h"

namespace kakusan {

namespace {

std::string describe_single_file(const WeightStore& store, const CheckpointType& type) {
  int ema = 0;
  for (const std::string& name : store.names()) ema += name.rfind("model_ema.", 0) == 0;
  const bool v2 = type.model_type == "v2";
  return str_cat("Stable Diffusion ", v2 ? "2.x" : "1.x", " single-file checkpoint (", type.model_type, "; ",
                 v2 ? "v_prediction, 768x768" : "epsilon prediction, 512x512", " as diffusers configures it from ",
                 type.default_repo, "; text encoder ", type.open_clip ? "OpenCLIP" : "CLIP", ")",
                 ema ? str_cat("\n  ", ema, " model_ema.* tensors (EMA copy, ignored as diffusers ignores it)") : "");
}

std::string describe_lora(const LoraFile& lora) {
  std::map<std::string, int> layers;
  std::set<float> alphas;
  for (const LoraLayer& layer : lora.layers()) {
    ++layers[layer.component];
    if (layer.alpha) alphas.insert(*layer.alpha);
  }
  std::string parts;
  for (const auto& [component, count] : layers)
    parts += str_cat(parts.empty() ? "" : ", ", component, " (", count, " layers)");
  std::string alpha = alphas.empty() ? "none (scale 1)" : "";
  for (float a : alphas) alpha += str_cat(alpha.empty() ? "" : "/", a);
  return str_cat("LoRA (", lora.format(), " format) for ", parts, ", rank ", lora.max_rank(), ", alpha ", alpha);
}

}  // namespace

std::string describe_checkpoint_file(const std::filesystem::path& file) {
  refuse_pickle(file);
  const WeightStore store = WeightStore::open({file});
  const SafetensorsFile& st = store.files().front();
  if (st.contains("model.diffusion_model.input_blocks.0.0.weight")) {
    return describe_single_file(store, detect_checkpoint_type(store));
  }
  if (looks_like_lora(st)) return describe_lora(LoraFile::parse(SafetensorsFile::open(file)));
  const bool a1111 = st.contains("emb_params");
  if (a1111 || st.entries().size() == 1) {
    const SafetensorsFile::Entry& e = a1111 ? *st.find("emb_params") : st.entries().front();
    if (e.shape.rank() <= 2 && e.shape.rank() >= 1 && is_float(e.dtype)) {
      const int64_t n = e.shape.rank() == 2 ? e.shape[0] : 1, width = e.shape[e.shape.rank() - 1];
      return str_cat("textual-inversion embedding (", a1111 ? "A1111" : "diffusers", " format): token '",
                     a1111 ? file.stem().string() + "' (the file name; --embedding FILE:TOKEN to choose)"
                           : e.name + "'",
                     ", ", n, " vector", n == 1 ? "" : "s", " of width ", width,
                     width == 768 ? " (SD 1.x)" : width == 1024 ? " (SD 2.x)" : "");
    }
  }
  return "not a checkpoint kakusan recognises (no single-file, LoRA or embedding layout)";
}

}  // namespace kakusan
