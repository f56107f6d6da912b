// ClipTokenizer: transformers' slow CLIPTokenizer (v4.40, without ftfy) as diffusers' StableDiffusionPipeline
// calls it: tokenizer(prompt, padding="max_length", max_length=model_max_length, truncation=True), plus the
// untruncated ids diffusers uses to warn about what was cut.
//
//   ClipTokenizer tok = ClipTokenizer::load(model_dir / "tokenizer");
//   TokenizedPrompt p = tok.encode("a photo of a cat");   // p.input_ids: 77 ids, bos ... eos pad pad ...
//
// Text flow: added tokens (the special tokens, and e.g. SD 2.x's pad token "!") are cut out of the raw text
// first and map straight to their ids; the remaining pieces are cleaned (text_cleaner.h), split by CLIP's
// pattern (clip_pretokenizer.h) and byte-level BPE encoded (clip_bpe.h).
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/clip_bpe.h"

namespace kakusan {

struct TokenizedPrompt {
  std::vector<int64_t> input_ids;        // bos, at most model_max_length - 2 tokens, eos, then pad ids
  std::vector<int64_t> attention_mask;   // 1 for bos/tokens/eos, 0 for padding
  std::vector<int64_t> untruncated_ids;  // bos, every token, eos (no padding)
  std::vector<std::string> tokens;       // every token of the text as a vocabulary string (no bos/eos)

  bool truncated() const { return untruncated_ids.size() > input_ids.size(); }
};

// A token matched in the raw text before any cleaning (transformers' AddedToken).
struct AddedToken {
  std::string content;
  int64_t id = 0;
  bool lstrip = false;       // swallows the whitespace on its left
  bool rstrip = false;       // swallows the whitespace on its right
  bool single_word = false;  // only matches as a whole word
};

class ClipTokenizer {
 public:
  // Reads vocab.json, merges.txt, tokenizer_config.json and special_tokens_map.json (both optional) from
  // `dir`. Throws Error naming the file for anything missing or malformed.
  static ClipTokenizer load(const std::filesystem::path& dir);

  // The tokens of `text` (UTF-8), without bos/eos. Throws Error if `text` is not valid UTF-8.
  std::vector<std::string> tokenize(std::string_view text) const;
  // Padded/truncated ids, attention mask, untruncated ids and tokens of one prompt.
  TokenizedPrompt encode(std::string_view text) const;
  // Ids back to text, as tokenizer.decode(ids) (special tokens kept, spaces cleaned up).
  std::string decode(std::span<const int64_t> ids) const;

  int64_t token_id(const std::string& token) const;
  int64_t bos_id() const { return bos_id_; }
  int64_t eos_id() const { return eos_id_; }
  int64_t pad_id() const { return pad_id_; }
  int64_t unk_id() const { return unk_id_; }
  int model_max_length() const { return model_max_length_; }
  const std::vector<AddedToken>& added_tokens() const { return added_; }
  // tokenizer.add_tokens(content) (textual inversion): a new token matched in the raw text, with the next
  // free id (len(tokenizer)). Throws Error if `content` is empty or already a token.
  int64_t add_token(const std::string& content);

 private:
  ClipTokenizer(ClipBpe bpe) : bpe_(std::move(bpe)) {}
  void tokenize_plain_text(std::string_view text, std::vector<std::string>& out) const;
  const AddedToken* added_by_content(std::string_view content) const;
  const AddedToken* added_by_id(int64_t id) const;

  ClipBpe bpe_;
  std::vector<AddedToken> added_;
  int64_t bos_id_ = 0, eos_id_ = 0, pad_id_ = 0, unk_id_ = 0;
  int model_max_length_ = 77;
};

}  // namespace kakusan
