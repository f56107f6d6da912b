// diffusers' StableDiffusionPipeline.encode_prompt: the tokenizer and CLIP text encoder of a model, turning
// prompts into the encoder_hidden_states of the UNet batch.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "models/clip_text_model.h"
#include "nn/context.h"
#include "tokenizer/clip_tokenizer.h"

namespace kakusan {

struct PromptBatch {
  std::vector<std::string> prompts;
  // Empty ("" for every prompt), one for all prompts, or one per prompt.
  std::vector<std::string> negative_prompts;
  int num_images_per_prompt = 1;
  bool classifier_free_guidance = true;
  std::optional<int> clip_skip;
  bool a1111_syntax = false;  // weights and 75-token chunks (pipeline/prompt_attention.h)
};

struct EncodedPrompts {
  // [2B, T, D] ordered [uncond..., cond...] with CFG, else [B, T, D]; B = prompts x images per prompt, each
  // prompt's embedding repeated for its images (prompt-major).
  Tensor embeds;
  std::vector<std::string> warnings;  // the part of each too-long prompt that was cut
};

class PromptEncoder {
 public:
  // `expansions`: text replaced before tokenizing, as diffusers' maybe_convert_prompt turns a multi-vector
  // textual-inversion token "T" into "T T_1 ...".
  PromptEncoder(ClipTokenizer tokenizer, ClipTextModel text_encoder,
                std::vector<std::pair<std::string, std::string>> expansions = {})
      : tokenizer_(std::move(tokenizer)), text_encoder_(std::move(text_encoder)), expansions_(std::move(expansions)) {}

  // `on_batch` (optional) is called after each text-encoder batch (cond, then uncond).
  EncodedPrompts encode(Context& ctx, const PromptBatch& batch, const std::function<void()>& on_batch = {}) const;
  // How many text-encoder batches encode() runs (for progress).
  static int num_batches(const PromptBatch& batch) { return batch.classifier_free_guidance ? 2 : 1; }

  const ClipTextModel& text_encoder() const { return text_encoder_; }
  ClipTextModel& text_encoder() { return text_encoder_; }  // for re-binding LoRA-merged weights

 private:
  // The batch's cond and uncond hidden states with A1111 syntax: both sides padded to one chunk count.
  void encode_a1111(Context& ctx, const PromptBatch& batch, const std::vector<std::string>& uncond_texts,
                    Tensor& cond, Tensor& uncond, std::vector<std::string>& warnings,
                    const std::function<void()>& on_batch) const;
  // [N, T, D] hidden states of N texts (padded to model_max_length), optionally clip-skipped.
  Tensor encode_texts(Context& ctx, const std::vector<std::string>& texts, std::optional<int> clip_skip,
                      std::vector<std::string>* warnings) const;

  ClipTokenizer tokenizer_;
  ClipTextModel text_encoder_;
  std::vector<std::pair<std::string, std::string>> expansions_;
};

}  // namespace kakusan
