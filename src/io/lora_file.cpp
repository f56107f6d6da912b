#include "io/lora_file.h"

#include <cmath>
#include <map>

#include "core/error.h"

namespace kakusan {

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}
bool starts_with(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

// The key forms, as data: a layer's down / up / alpha suffixes per format.
struct KeyForm {
  const char* format;
  const char* down;
  const char* up;
};
// diffusers' own conversion (convert_state_dict_to_diffusers) renames only the attention layers, so its files
// mix its forms with PEFT's for the others (proj_in, convolutions).
constexpr KeyForm kForms[] = {
    {"kohya", ".lora_down.weight", ".lora_up.weight"},
    {"peft", ".lora_A.weight", ".lora_B.weight"},
    {"diffusers", ".lora.down.weight", ".lora.up.weight"},
    {"diffusers", ".lora_linear_layer.down.weight", ".lora_linear_layer.up.weight"},
};

// The file's format after adding a key of `form`: kohya stands alone; diffusers includes PEFT keys.
std::optional<std::string> combined_format(const std::string& so_far, const std::string& form) {
  if (so_far.empty() || so_far == form) return form;
  if (so_far == "kohya" || form == "kohya") return std::nullopt;
  return std::string("diffusers");
}

// The component a key stem names and the module after its prefix.
struct Owner {
  std::string component, module;
  bool flat = false;
};
std::optional<Owner> owner_of(const std::string& stem) {
  const std::pair<const char*, const char*> flat_prefixes[] = {
      {"lora_unet_", "unet"}, {"lora_te_", "text_encoder"}, {"lora_te1_", "text_encoder"}};
  for (const auto& [prefix, component] : flat_prefixes)
    if (starts_with(stem, prefix)) return Owner{component, stem.substr(std::string(prefix).size()), true};
  for (const char* component : {"unet", "text_encoder"})
    if (starts_with(stem, std::string(component) + "."))
      return Owner{component, stem.substr(std::string(component).size() + 1)};
  return std::nullopt;
}

std::string list(const std::vector<std::string>& names) {
  std::string out;
  for (size_t i = 0; i < names.size() && i < 5; ++i) out += (i ? ", '" : "'") + names[i] + "'";
  if (names.size() > 5) out += str_cat(" and ", names.size() - 5, " more");
  return out;
}

}  // namespace

LoraFile LoraFile::open(const std::filesystem::path& path) { return parse(SafetensorsFile::open(path)); }

LoraFile LoraFile::parse(SafetensorsFile parsed) {
  LoraFile lora;
  lora.file_ = std::make_shared<SafetensorsFile>(std::move(parsed));
  const SafetensorsFile& file = *lora.file_;
  const std::string where = file.path().string();
  std::map<std::string, const SafetensorsFile::Entry*> unused;
  for (const SafetensorsFile::Entry& e : file.entries()) unused.emplace(e.name, &e);
  for (const SafetensorsFile::Entry& e : file.entries()) {
    for (const KeyForm& form : kForms) {
      if (!ends_with(e.name, form.down)) continue;
      const std::string stem = e.name.substr(0, e.name.size() - std::string(form.down).size());
      const std::string up_name = stem + form.up, alpha_name = stem + ".alpha";
      const std::optional<Owner> owner = owner_of(stem);
      KK_CHECK(owner, where, ": LoRA layer '", stem, "' names no known model (expected lora_unet_ / lora_te_ / unet. / "
               "text_encoder.)");
      const std::optional<std::string> format = combined_format(lora.format_, form.format);
      KK_CHECK(format, where, ": mixes ", lora.format_, " and ", form.format, " keys ('", e.name, "')");
      lora.format_ = *format;
      KK_CHECK(file.contains(up_name), where, ": LoRA layer '", stem, "' has '", e.name, "' but no '", up_name, "'");
      LoraLayer layer{owner->component, owner->module, owner->flat, stem, file.view(e.name), file.view(up_name), {}};
      for (const TensorView* t : {&layer.down, &layer.up})
        KK_CHECK(is_float(t->dtype) && (t->rank() == 2 || t->rank() == 4), where, ": LoRA layer '", stem, "': ",
                 dtype_name(t->dtype), " ", t->shape.str(), " is not a float matrix or convolution kernel");
      const int64_t rank = layer.down.shape[0];
      KK_CHECK(rank > 0 && layer.up.shape[1] == rank && layer.up.rank() == layer.down.rank(), where, ": LoRA layer '",
               stem, "': down ", layer.down.shape.str(), " and up ", layer.up.shape.str(), " disagree on the rank");
      KK_CHECK(layer.up.rank() == 2 || (layer.up.shape[2] == 1 && layer.up.shape[3] == 1), where, ": LoRA layer '",
               stem, "': up ", layer.up.shape.str(), " is not a 1x1 kernel");
      if (file.contains(alpha_name)) {
        const Tensor alpha = file.load_f32(alpha_name);
        KK_CHECK(alpha.numel() == 1, where, ": '", alpha_name, "' has ", alpha.numel(), " values, expected one");
        KK_CHECK(std::isfinite(alpha.f32()[0]), where, ": '", alpha_name, "' is ", alpha.f32()[0]);
        layer.alpha = alpha.f32()[0];
        unused.erase(alpha_name);
      }
      unused.erase(e.name);
      unused.erase(up_name);
      lora.layers_.push_back(std::move(layer));
      break;
    }
  }
  std::vector<std::string> left;
  for (const auto& [name, entry] : unused) left.push_back(name);
  KK_CHECK(left.empty(), where, ": ", left.size(), " keys are no LoRA layer kakusan applies: ", list(left));
  KK_CHECK(!lora.layers_.empty(), where, ": no LoRA layers (no *.lora_down / lora_A / lora.down weights)");
  return lora;
}

int64_t LoraFile::max_rank() const {
  int64_t rank = 0;
  for (const LoraLayer& layer : layers_) rank = std::max(rank, layer.down.shape[0]);
  return rank;
}

bool looks_like_lora(const SafetensorsFile& file) {
  for (const SafetensorsFile::Entry& e : file.entries())
    for (const KeyForm& form : kForms)
      if (ends_with(e.name, form.down)) return true;
  return false;
}

}  // namespace kakusan
