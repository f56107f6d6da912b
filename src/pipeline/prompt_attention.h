// A1111's prompt syntax as diffusers' community pipeline lpw_stable_diffusion reads it: attention weights
// `(word)` x1.1, `[word]` /1.1, `(word:1.3)`, escapes `\(` `\)` `\[` `\]` `\\`; prompts longer than the text
// encoder's 77 tokens are encoded as up to three chunks of 75 tokens (each with its own bos/eos) and the
// hidden states concatenated. Weighted hidden states are rescaled so that their mean is unchanged.
//
// BREAK is plain text here, as in lpw_stable_diffusion (A1111 itself starts a new chunk there).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/tensor.h"
#include "models/clip_text_model.h"
#include "nn/context.h"
#include "tokenizer/clip_tokenizer.h"

namespace kakusan {

struct WeightedRun {
  std::string text;
  double weight = 1.0;
};

// lpw's parse_prompt_attention: runs of text with their weight, neighbours of equal weight merged; an empty
// prompt is one empty run. Throws Error if a `(text:weight)` weight is not a number.
std::vector<WeightedRun> parse_prompt_attention(std::string_view text);

// Token ids and per-token weights of a batch of texts, padded to one length (lpw's get_prompts_with_weights
// + pad_tokens_and_weights with no_boseos_middle=False): `chunks` x 77 entries per text, each chunk laid out
// as bos, 75 tokens, eos when the text is encoded chunk by chunk.
struct WeightedTokens {
  int chunks = 1;
  std::vector<std::vector<int64_t>> ids;    // [texts][(chunk_length - 2) * chunks + 2]
  std::vector<std::vector<float>> weights;  // [texts][chunk_length * chunks]
  bool truncated = false;                   // some text had more than 75 * max_chunks tokens
};

inline constexpr int kMaxPromptChunks = 3;  // lpw's max_embeddings_multiples default

// Both sides of a CFG batch share one chunk count (the longest text decides), as lpw pads them together.
// `uncond` may be empty (no CFG).
void weighted_tokens(const ClipTokenizer& tokenizer, const std::vector<std::string>& texts,
                     const std::vector<std::string>& uncond, WeightedTokens& cond_out, WeightedTokens& uncond_out,
                     int max_chunks = kMaxPromptChunks);

// The ids of chunk `c` of a text's padded ids: 77 ids, the first set to bos and the last to eos.
std::vector<int64_t> chunk_ids(const std::vector<int64_t>& ids, int c, int chunk_length, int64_t bos, int64_t eos);

// In place on [texts, chunks * chunk_length, D] hidden states (host memory: prompt embeddings are small and
// this runs once per generation): multiplies each token's vector by its weight, then rescales each text so its
// mean over tokens and channels is the unweighted mean (lpw's normalisation).
void apply_token_weights(float* hidden, int64_t texts, int64_t tokens, int64_t channels,
                         const std::vector<std::vector<float>>& weights);

// lpw's get_weighted_text_embeddings for one side of the batch: every chunk of every text through the text
// encoder in one batch, the chunks' hidden states concatenated ([texts, chunks * 77, D]), then weighted.
Tensor encode_weighted(Context& ctx, const ClipTokenizer& tokenizer, const ClipTextModel& text_encoder,
                       const WeightedTokens& tokens, int clip_skip = 0);

}  // namespace kakusan
