#include "models/lora_merge.h"

#include <cmath>
#include <limits>
#include <map>

#include "backend/backend.h"
#include "core/error.h"
#include "io/weight_overlay.h"

namespace kakusan {

namespace {

// kohya names a module by its diffusers name with every '.' as '_'; the model's own names resolve that
// unambiguously (diffusers' key conversion guesses from the underscores instead).
std::map<std::string, std::string> flat_module_names(const WeightSource& source) {
  std::map<std::string, std::string> flat;
  for (const std::string& name : source.names()) {
    if (name.size() < 7 || name.compare(name.size() - 7, 7, ".weight") != 0) continue;
    std::string module = name.substr(0, name.size() - 7), key = module;
    for (char& c : key)
      if (c == '.') c = '_';
    flat.emplace(key, module);
  }
  return flat;
}

// W32 += factor * (up . down) (up [out, r], down [r, K], W [out, K]), as PEFT merges: the product is one
// linear op (x = up, w = downᵀ) on the CPU backend, since merging happens on the host at load time, before
// the weights go to their device.
void add_product(const Tensor& weight, const LoraLayer& layer, float factor) {
  const int64_t out = layer.up.shape[0], rank = layer.down.shape[0], k = layer.down.numel() / rank;
  Tensor up = Tensor::empty(Shape{out, rank}), down_t = Tensor::empty(Shape{k, rank});
  convert_into(layer.up.reshape(up.shape()), up.view());
  convert_into(layer.down.reshape(Shape{rank, k}).permute({1, 0}), down_t.view());
  Tensor product = Tensor::empty(Shape{out, k});
  cpu_backend().linear(up, down_t, TensorView(), product);
  float* w = weight.f32();
  const float* p = product.f32();
  for (int64_t i = 0; i < out * k; ++i) w[i] += factor * p[i];
}

// The largest magnitude `dtype` holds: a merged value beyond it would become inf in the copy.
float largest_finite(DType dtype) {
  return dtype == DType::F16 ? 65504.0f : std::numeric_limits<float>::max();  // bf16 shares f32's exponent
}

// Throws when a merged weight is no longer a finite number of `dtype` (e.g. <lora:x:1e30>).
void check_merged(const std::string& name, const Tensor& merged, DType dtype, const std::string& component) {
  const float limit = largest_finite(dtype);
  const float* w = merged.f32();
  for (int64_t i = 0; i < merged.numel(); ++i)
    KK_CHECK(std::fabs(w[i]) <= limit, "the LoRA-merged ", component, " weight '", name, "' is ", w[i],
             ", which ", dtype_name(dtype), " cannot hold (is a LoRA scale far too large?)");
}

}  // namespace

std::vector<std::pair<std::string, Tensor>> merge_lora_weights(const WeightSource& base, const std::string& component,
                                                               const std::vector<LoraAdapter>& adapters, DType dtype) {
  // First every layer is matched and checked (nothing allocated yet), then each weight is merged in float32 and
  // converted to `dtype` on its own, so that at most one float32 weight exists at a time: a LoRA that touches
  // the whole UNet (LCM-LoRA) costs the copies in the model's dtype, not twice that in float32.
  struct Term {
    const LoraLayer* layer;
    float factor;
  };
  std::map<std::string, std::vector<Term>> terms;  // weight name -> its layers, in adapter order
  std::map<std::string, std::string> flat;
  std::vector<std::string> unmatched;  // every layer that fits no weight, listed in one error
  for (const LoraAdapter& adapter : adapters) {
    for (const LoraLayer& layer : adapter.file->layers()) {
      if (layer.component != component) continue;
      std::string module = layer.module;
      if (layer.flat) {
        if (flat.empty()) flat = flat_module_names(base);
        auto it = flat.find(layer.module);
        module = it == flat.end() ? "" : it->second;
      }
      const std::string name = module + ".weight";
      const std::optional<WeightRef> ref = module.empty() ? std::nullopt : base.get(name);
      if (!ref) {
        unmatched.push_back(str_cat(adapter.file->describe(), ": '", layer.key, "'"));
        continue;
      }
      const Shape& w = ref->view.shape;
      const int64_t rank = layer.down.shape[0];
      const bool fits = w.rank() == layer.down.rank() && w[0] == layer.up.shape[0] &&
                        w.numel() / w[0] == layer.down.numel() / rank &&
                        (w.rank() == 2 || (w[1] == layer.down.shape[1] && w[2] == layer.down.shape[2]));
      KK_CHECK(fits, adapter.file->describe(), ": LoRA layer '", layer.key, "' (down ", layer.down.shape.str(),
               ", up ", layer.up.shape.str(), ") does not fit ", ref->describe(name), " ", w.str());
      terms[name].push_back({&layer, adapter.scale * (layer.alpha ? *layer.alpha / float(rank) : 1.0f)});
    }
  }
  if (!unmatched.empty()) {
    std::string listed;
    for (size_t i = 0; i < unmatched.size() && i < 4; ++i) listed += (i ? "; " : "") + unmatched[i];
    fail(unmatched.size(), " LoRA layers match no layer of the ", component, " (", base.describe(),
         "; a LoRA for another model?): ", listed,
         unmatched.size() > 4 ? str_cat(" and ", unmatched.size() - 4, " more") : "");
  }
  std::vector<std::pair<std::string, Tensor>> replacements;
  const std::vector<std::shared_ptr<const MappedFile>> mappings = base.mapped_files();
  for (const auto& [name, layers] : terms) {
    Tensor weight = copy_weight(base, name, DType::F32);
    // The file's pages of the weight are not read again (the model binds the copy): let them go now, or a
    // LoRA over the whole UNet would hold the file's weights and their copies at once.
    const WeightRef stored = *base.get(name);
    if (stored.mapped)
      for (const auto& mapping : mappings) mapping->drop_range(stored.view.data, stored.view.nbytes());
    for (const Term& term : layers) add_product(weight, *term.layer, term.factor);
    check_merged(name, weight, dtype, component);
    replacements.emplace_back(name, dtype == DType::F32 ? std::move(weight) : weight.to(dtype));
  }
  return replacements;
}

std::shared_ptr<const WeightSource> merge_loras(std::shared_ptr<const WeightSource> base, const std::string& component,
                                                const std::vector<LoraAdapter>& adapters, DType dtype) {
  std::vector<std::pair<std::string, Tensor>> replacements = merge_lora_weights(*base, component, adapters, dtype);
  if (replacements.empty()) return base;
  return std::make_shared<OverlaySource>(std::move(base), std::move(replacements));
}

}  // namespace kakusan
