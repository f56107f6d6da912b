#include "pipeline/lora_set.h"

#include <cmath>

#include "core/error.h"
#include "io/weight_overlay.h"
#include "models/lora_merge.h"
#include "models/model_folder_load.h"

namespace kakusan {

namespace {

bool same_set(const std::vector<LoadOptions::Lora>& a, const std::vector<LoadOptions::Lora>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)  // in order: the sum's rounding depends on it
    if (a[i].file != b[i].file || a[i].scale != b[i].scale) return false;
  return true;
}

std::vector<LoraAdapter> open_adapters(const std::vector<LoadOptions::Lora>& loras) {
  std::vector<LoraAdapter> adapters;
  for (const LoadOptions::Lora& lora : loras) {
    KK_CHECK(std::isfinite(lora.scale), "LoRA ", lora.file, ": scale ", lora.scale, " is not finite");
    adapters.push_back({std::make_shared<const LoraFile>(LoraFile::open(lora.file)), lora.scale});
  }
  return adapters;
}

// Passes only the parameters named in `names` on to `inner`: the one weight walk, restricted to the weights a
// LoRA change touches.
class OnlyNamed final : public WeightVisitor {
 public:
  OnlyNamed(WeightVisitor& inner, const std::set<std::string>& names) : inner_(inner), names_(names) {}
  void tensor(const std::string& name, Tensor& param, const Shape& shape) override {
    if (names_.count(name)) inner_.tensor(name, param, shape);
  }

 private:
  WeightVisitor& inner_;
  const std::set<std::string>& names_;
};

// A component's weights after a change: the new merged copies over the unmerged source.
struct Rebinding {
  std::shared_ptr<const WeightSource> source;
  std::set<std::string> touched;
};

Rebinding remerge(const std::shared_ptr<const WeightSource>& base, const char* component,
                  const std::vector<LoraAdapter>& adapters, DType dtype) {
  std::vector<std::pair<std::string, Tensor>> merged = merge_lora_weights(*base, component, adapters, dtype);
  Rebinding out;
  for (const auto& [name, weight] : merged) out.touched.insert(name);
  out.source = merged.empty() ? base : std::make_shared<const OverlaySource>(base, std::move(merged));
  return out;
}

template <typename Model>
void rebind(Model& model, const Rebinding& next, const std::set<std::string>& previous, DType dtype) {
  std::set<std::string> names = previous;
  names.insert(next.touched.begin(), next.touched.end());
  WeightLoader loader(*next.source, dtype);
  OnlyNamed only(loader, names);
  model.visit(only);
  KK_ASSERT(loader.bound_all());  // the names come from the source the model was loaded from
}

}  // namespace

void LoraSet::prepare(ModelSources& sources, const LoadOptions& options) {
  std::error_code error;
  KK_CHECK(!options.lora_dir || std::filesystem::is_directory(*options.lora_dir, error), "the LoRA folder ",
           options.lora_dir.value_or("").string(), " is not a folder");
  load_loras_ = current_ = options.loras;
  const std::vector<LoraAdapter> adapters = open_adapters(options.loras);
  for (auto [part, source] : {std::pair{&unet_, &sources.unet}, std::pair{&text_encoder_, &sources.text_encoder}}) {
    part->base = source->weights;
    part->dtype = matrix_dtype(options.dtype, *source->weights);
    Rebinding merged = remerge(part->base, part->component, adapters, part->dtype);
    source->weights = merged.source;
    part->touched = std::move(merged.touched);
  }
}

std::vector<LoadOptions::Lora> LoraSet::with(const std::vector<LoadOptions::Lora>& extra) const {
  std::vector<LoadOptions::Lora> all = load_loras_;
  all.insert(all.end(), extra.begin(), extra.end());
  return all;
}

template <typename Model>
void LoraSet::rebind_part(Model& model, Part& part, const std::vector<LoraAdapter>& adapters) {
  rebind(model, Rebinding{part.base, {}}, part.touched, part.dtype);
  part.touched.clear();
  Rebinding next = remerge(part.base, part.component, adapters, part.dtype);
  rebind(model, next, {}, part.dtype);
  part.touched = std::move(next.touched);
}

void LoraSet::rebind_all(UNet2DConditionModel& unet, ClipTextModel& text_encoder,
                         const std::vector<LoraAdapter>& adapters) {
  rebind_part(unet, unet_, adapters);
  rebind_part(text_encoder, text_encoder_, adapters);
}

bool LoraSet::is_current(const std::vector<LoadOptions::Lora>& wanted) const { return same_set(wanted, current_); }

bool LoraSet::use(const std::vector<LoadOptions::Lora>& wanted, UNet2DConditionModel& unet,
                  ClipTextModel& text_encoder) {
  if (is_current(wanted)) return false;
  const std::vector<LoraAdapter> adapters = open_adapters(wanted);  // an unreadable file changes nothing
  try {
    rebind_all(unet, text_encoder, adapters);
  } catch (const Error&) {
    // The previous set merged before, so it merges again; should its files have gone meanwhile, no LoRA at all
    // (and current_ says so).
    try {
      rebind_all(unet, text_encoder, open_adapters(current_));
    } catch (const Error&) {
      rebind_all(unet, text_encoder, {});
      current_.clear();
    }
    throw;
  }
  current_ = wanted;
  return true;
}

}  // namespace kakusan
