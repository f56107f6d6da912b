// Textual inversion, as diffusers' pipe.load_textual_inversion(FILE, token=TOKEN): new tokens whose input
// embeddings are the file's vectors. Files: diffusers' ({token: [n, D] or [D]}) and A1111's safetensors
// (emb_params [n, D]; its token defaults to the file's stem, A1111's trigger word). A multi-vector embedding
// adds TOKEN, TOKEN_1, ..., TOKEN_{n-1}, and prompts have "TOKEN" expanded to all of them, as diffusers'
// maybe_convert_prompt does.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "models/component_source.h"
#include "tokenizer/clip_tokenizer.h"

namespace kakusan {

struct TextualInversion {
  std::string token;
  Tensor vectors;  // [n, D] float32
  std::string file;
};

// Throws Error naming the file: not an embedding, several candidate tensors, non-finite values.
TextualInversion read_textual_inversion(const std::filesystem::path& file, const std::optional<std::string>& token);

// Adds the tokens to `tokenizer` and the rows to the text encoder (its config's vocab_size grows; the token
// embedding becomes an owned copy with the rows appended, in its stored dtype, as resize_token_embeddings).
// Returns the prompt expansions of multi-vector tokens. Throws Error when a token is already a token or a
// vector's width is not the text encoder's hidden size.
std::vector<std::pair<std::string, std::string>> add_textual_inversions(const std::vector<TextualInversion>& embeddings,
                                                                        ClipTokenizer& tokenizer,
                                                                        ComponentSource& text_encoder);

}  // namespace kakusan
