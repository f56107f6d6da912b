#include "pipeline/prompt_encoder.h"

#include <cstring>

#include "backend/staged_tensor.h"
#include "pipeline/prompt_attention.h"

namespace kakusan {

namespace {

// [N, T, D] -> rows [first, first + N * repeats) of `out`, each entry repeated `repeats` times in place
// (torch's repeat(1, n, 1).view(N * n, T, D)), on the backend that holds both.
void repeat_into(Backend& backend, const Tensor& source, int repeats, const TensorView& out, int64_t first) {
  for (int64_t i = 0; i < source.dim(0); ++i)
    for (int r = 0; r < repeats; ++r, ++first) backend.copy(source.view()[i], out[first]);
}

// Every occurrence of each `from` replaced by its `to` (Python's str.replace), in order.
std::string expanded(std::string text, const std::vector<std::pair<std::string, std::string>>& expansions) {
  for (const auto& [from, to] : expansions)
    for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size()))
      text.replace(at, from.size(), to);
  return text;
}

}  // namespace

Tensor PromptEncoder::encode_texts(Context& ctx, const std::vector<std::string>& texts, std::optional<int> clip_skip,
                                   std::vector<std::string>* warnings) const {
  const int64_t length = tokenizer_.model_max_length();
  StagedTensor ids(ctx.backend, {int64_t(texts.size()), length}, DType::I64);
  for (size_t i = 0; i < texts.size(); ++i) {
    const TokenizedPrompt tokens = tokenizer_.encode(expanded(texts[i], expansions_));
    KK_ASSERT(int64_t(tokens.input_ids.size()) == length);
    std::memcpy(ids.host().i64() + int64_t(i) * length, tokens.input_ids.data(), size_t(length) * sizeof(int64_t));
    if (warnings != nullptr && tokens.truncated()) {
      // diffusers decodes untruncated_ids[model_max_length - 1 : -1]: the tokens after the kept ones.
      const std::span<const int64_t> all(tokens.untruncated_ids);
      const std::string removed = tokenizer_.decode(all.subspan(size_t(length - 1), all.size() - size_t(length)));
      warnings->push_back(str_cat("The following part of your input was truncated because CLIP can only handle "
                                  "sequences up to ", length, " tokens: ", removed));
    }
  }
  ids.upload();
  return text_encoder_.forward(ctx, ids.on_backend(), clip_skip.value_or(0));
}

void PromptEncoder::encode_a1111(Context& ctx, const PromptBatch& batch, const std::vector<std::string>& uncond_texts,
                                 Tensor& cond, Tensor& uncond, std::vector<std::string>& warnings,
                                 const std::function<void()>& on_batch) const {
  WeightedTokens cond_tokens, uncond_tokens;
  weighted_tokens(tokenizer_, batch.prompts, uncond_texts, cond_tokens, uncond_tokens);
  if (cond_tokens.truncated)
    warnings.push_back(str_cat("A prompt was truncated: A1111 syntax encodes at most ", kMaxPromptChunks, " x ",
                               tokenizer_.model_max_length() - 2, " tokens"));
  cond = encode_weighted(ctx, tokenizer_, text_encoder_, cond_tokens, batch.clip_skip.value_or(0));
  if (on_batch) on_batch();
  if (uncond_texts.empty()) return;
  uncond = encode_weighted(ctx, tokenizer_, text_encoder_, uncond_tokens);
  if (on_batch) on_batch();
}

EncodedPrompts PromptEncoder::encode(Context& ctx, const PromptBatch& batch,
                                     const std::function<void()>& on_batch) const {
  KK_ASSERT(!batch.prompts.empty() && batch.num_images_per_prompt >= 1);
  EncodedPrompts result;
  // Unconditional embeddings: "" (or the negative prompt), never clip-skipped (diffusers v0.29 encodes the
  // negative prompt with the plain last_hidden_state even when clip_skip is set).
  std::vector<std::string> uncond_texts;
  for (size_t i = 0; batch.classifier_free_guidance && i < batch.prompts.size(); ++i) {
    if (batch.negative_prompts.empty())
      uncond_texts.emplace_back("");
    else
      uncond_texts.push_back(batch.negative_prompts.size() == 1 ? batch.negative_prompts[0]
                                                                : batch.negative_prompts.at(i));
  }
  Tensor cond, uncond;
  if (batch.a1111_syntax) {
    encode_a1111(ctx, batch, uncond_texts, cond, uncond, result.warnings, on_batch);
  } else {
    cond = encode_texts(ctx, batch.prompts, batch.clip_skip, &result.warnings);
    if (on_batch) on_batch();
    if (batch.classifier_free_guidance) {
      uncond = encode_texts(ctx, uncond_texts, std::nullopt, nullptr);
      if (on_batch) on_batch();
    }
  }
  const int n = batch.num_images_per_prompt;
  const int64_t images = cond.dim(0) * n;
  Backend& backend = ctx.backend;
  if (!batch.classifier_free_guidance) {
    result.embeds = backend.empty({images, cond.dim(1), cond.dim(2)}, cond.dtype());
    repeat_into(backend, cond, n, result.embeds, 0);
    return result;
  }
  KK_ASSERT(uncond.shape() == cond.shape());
  result.embeds = backend.empty({2 * images, cond.dim(1), cond.dim(2)}, cond.dtype());
  repeat_into(backend, uncond, n, result.embeds, 0);
  repeat_into(backend, cond, n, result.embeds, images);
  return result;
}

}  // namespace kakusan
