// A LoRA file (safetensors) read into its adapted layers, whatever its format:
//   kohya / A1111   lora_unet_<module with '_'>.lora_down.weight / .lora_up.weight / .alpha, lora_te_ (lora_te1_)
//   PEFT            unet.<module>.lora_A.weight / .lora_B.weight, text_encoder.<module>...
//   diffusers       unet.<module>.lora.down.weight / .lora.up.weight (optional <prefix>.<module>.alpha)
// as diffusers' load_lora_weights reads them. Every key must belong to a layer: a key that matches none of
// these forms is an error listing it (a LoRA for another architecture is never half-applied). Views borrow
// the file's mapping.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "io/safetensors.h"

namespace kakusan {

struct LoraLayer {
  std::string component;  // "unet" or "text_encoder"
  // The diffusers module ("down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q"); for kohya files the
  // module with every '.' as '_' (resolved against the model's names, see lora_merge.h) and `flat` set.
  std::string module;
  bool flat = false;
  std::string key;         // the file's key stem, for messages
  TensorView down, up;     // A [r, in (, kh, kw)] and B [out, r (, 1, 1)]
  std::optional<float> alpha;  // scale alpha / r; none: 1
};

class LoraFile {
 public:
  // Throws Error("<file>: <problem>") for a malformed file, a key of no known form, a layer without its
  // other half, ranks that disagree, or a non-finite alpha.
  static LoraFile open(const std::filesystem::path& path);
  static LoraFile parse(SafetensorsFile file);

  const std::string& format() const { return format_; }  // "kohya", "peft" or "diffusers"
  const std::vector<LoraLayer>& layers() const { return layers_; }
  const SafetensorsFile& file() const { return *file_; }
  std::string describe() const { return file_->path().string(); }
  // The rank of every layer (the largest when they differ).
  int64_t max_rank() const;

 private:
  std::shared_ptr<SafetensorsFile> file_;
  std::string format_;
  std::vector<LoraLayer> layers_;
};

// True if a safetensors file's names look like a LoRA (for `kakusan inspect`).
bool looks_like_lora(const SafetensorsFile& file);

}  // namespace kakusan
