#include "tokenizer/clip_tokenizer.h"

#include <algorithm>
#include <charconv>

#include "core/error.h"
#include "io/json_config.h"
#include "tokenizer/clip_pretokenizer.h"
#include "tokenizer/text_cleaner.h"
#include "tokenizer/unicode_text.h"

namespace kakusan {

namespace {

// A special token in tokenizer_config.json / special_tokens_map.json: a string or an AddedToken object.
struct TokenSpec {
  std::string content;
  AddedToken flags;
};

// The AddedToken flags of a token object; a flag of the wrong type is an Error naming the file and flag.
void read_flags(const JsonConfig& token, AddedToken& flags) {
  flags.lstrip = token.get<bool>("lstrip", false);
  flags.rstrip = token.get<bool>("rstrip", false);
  flags.single_word = token.get<bool>("single_word", false);
}

std::optional<TokenSpec> read_token_spec(const JsonConfig& config, const std::string& key) {
  if (!config.has(key)) return std::nullopt;
  const nlohmann::json& value = config.json()[key];
  TokenSpec spec;
  if (value.is_string()) {
    spec.content = value.get<std::string>();
  } else if (value.is_object() && value.contains("content") && value["content"].is_string()) {
    spec.content = value["content"].get<std::string>();
    read_flags(JsonConfig(value, str_cat(config.source(), " (\"", key, "\")")), spec.flags);
  } else {
    fail(config.source(), ": \"", key, "\" should be a string or an object with \"content\" (got ", value.dump(), ")");
  }
  return spec;
}

std::u32string strip_python_space(std::u32string_view s, bool left, bool right) {
  size_t begin = 0, end = s.size();
  if (left)
    while (begin < end && unicode::is_python_space(s[begin])) ++begin;
  if (right)
    while (end > begin && unicode::is_python_space(s[end - 1])) --end;
  return std::u32string(s.substr(begin, end - begin));
}

std::string strip_utf8(const std::string& s, bool left, bool right) {
  return unicode::encode_utf8(strip_python_space(unicode::decode_utf8(s, "text"), left, right));
}

void replace_all(std::string& s, std::string_view from, std::string_view to) {
  for (size_t pos = s.find(from); pos != std::string::npos; pos = s.find(from, pos + to.size()))
    s.replace(pos, from.size(), to);
}

// A piece of the raw text: either plain text or one occurrence of an added token.
struct Piece {
  std::string text;
  const AddedToken* added = nullptr;
};

}  // namespace

ClipTokenizer ClipTokenizer::load(const std::filesystem::path& dir) {
  KK_CHECK(std::filesystem::is_directory(dir), dir.string(),
           ": not a directory (expected a model's tokenizer/ folder)");
  ClipTokenizer tok(ClipBpe::load(dir / "vocab.json", dir / "merges.txt"));

  const std::filesystem::path config_path = dir / "tokenizer_config.json";
  const std::filesystem::path map_path = dir / "special_tokens_map.json";
  const JsonConfig config = std::filesystem::exists(config_path) ? JsonConfig::load(config_path) : JsonConfig();
  const JsonConfig special_map = std::filesystem::exists(map_path) ? JsonConfig::load(map_path) : JsonConfig();

  // Tokens with explicit ids come first; the special tokens not among them are looked up in the vocabulary.
  if (config.has("added_tokens_decoder")) {
    const nlohmann::json& decoder = config.json()["added_tokens_decoder"];
    KK_CHECK(decoder.is_object(), config.source(), ": \"added_tokens_decoder\" should be an object {id: token}");
    for (const auto& [id_text, value] : decoder.items()) {
      AddedToken token;
      // The whole key is a non-negative id ("5x" and "-1" are not, though std::stoll would take them).
      const char* end = id_text.data() + id_text.size();
      const auto [stop, status] = std::from_chars(id_text.data(), end, token.id);
      KK_CHECK(status == std::errc() && stop == end && token.id >= 0, config.source(), ": added_tokens_decoder key \"",
               id_text, "\" is not a non-negative integer id");
      KK_CHECK(value.is_object() && value.contains("content") && value["content"].is_string(), config.source(),
               ": added_tokens_decoder[\"", id_text, "\"] has no \"content\" string");
      token.content = value["content"].get<std::string>();
      read_flags(JsonConfig(value, str_cat(config.source(), " (added_tokens_decoder[\"", id_text, "\"])")), token);
      KK_CHECK(!token.content.empty(), config.source(), ": added token ", id_text, " is empty");
      tok.added_.push_back(std::move(token));
    }
  }

  // special_tokens_map.json wins over tokenizer_config.json, as in transformers; CLIP's defaults otherwise.
  auto special = [&](const std::string& key, const std::string& fallback) -> int64_t {
    std::optional<TokenSpec> spec = read_token_spec(special_map, key);
    if (!spec) spec = read_token_spec(config, key);
    if (!spec) spec = TokenSpec{fallback, {}};
    if (const AddedToken* known = tok.added_by_content(spec->content)) return known->id;
    const std::optional<int64_t> id = tok.bpe_.token_to_id(spec->content);
    KK_CHECK(id.has_value(), dir.string(), ": the ", key, " \"", spec->content,
             "\" is neither in vocab.json nor in added_tokens_decoder");
    AddedToken token = spec->flags;
    token.content = spec->content;
    token.id = *id;
    tok.added_.push_back(std::move(token));
    return *id;
  };
  tok.unk_id_ = special("unk_token", "<|endoftext|>");
  tok.bos_id_ = special("bos_token", "<|startoftext|>");
  tok.eos_id_ = special("eos_token", "<|endoftext|>");
  tok.pad_id_ = special("pad_token", "<|endoftext|>");

  // The special tokens must reach BPE whole if they survive cleaning as plain text (e.g. "<|STARTOFTEXT|>").
  tok.bpe_.add_unsplittable("<|startoftext|>");
  tok.bpe_.add_unsplittable("<|endoftext|>");

  // diffusers pads to tokenizer.model_max_length (77 for every Stable Diffusion checkpoint).
  if (config.has("model_max_length")) {
    const double length = config.require<double>("model_max_length");
    KK_CHECK(length >= 3 && length <= 1'000'000, config.source(), ": model_max_length ", length,
             " is not usable (expected the text encoder's context length, e.g. 77)");
    tok.model_max_length_ = int(length);
  }
  return tok;
}

int64_t ClipTokenizer::add_token(const std::string& content) {
  KK_CHECK(!content.empty(), "an added token cannot be empty");
  KK_CHECK(!bpe_.token_to_id(content) && !added_by_content(content), "token '", content,
           "' is already in the tokenizer's vocabulary; choose another token name (FILE:TOKEN)");
  int64_t id = bpe_.vocab_size();
  for (const AddedToken& t : added_) id = std::max(id, t.id + 1);
  AddedToken token;
  token.content = content;
  token.id = id;
  added_.push_back(std::move(token));
  return id;
}

const AddedToken* ClipTokenizer::added_by_content(std::string_view content) const {
  for (const AddedToken& t : added_)
    if (t.content == content) return &t;
  return nullptr;
}

const AddedToken* ClipTokenizer::added_by_id(int64_t id) const {
  for (const AddedToken& t : added_)
    if (t.id == id) return &t;
  return nullptr;
}

int64_t ClipTokenizer::token_id(const std::string& token) const {
  if (const AddedToken* added = added_by_content(token)) return added->id;
  return bpe_.token_to_id(token).value_or(unk_id_);
}

void ClipTokenizer::tokenize_plain_text(std::string_view text, std::vector<std::string>& out) const {
  const std::u32string cleaned = clean_prompt_text(unicode::decode_utf8(text, "prompt"));
  for (const std::string& word : split_clip_words(cleaned))
    for (std::string& token : bpe_.encode_word(word)) out.push_back(std::move(token));
}

std::vector<std::string> ClipTokenizer::tokenize(std::string_view text) const {
  unicode::decode_utf8(text, "prompt");  // rejects ill-formed UTF-8 before anything else

  // Cut the raw text at every added token (leftmost, then longest match).
  std::vector<Piece> pieces;
  std::string plain;
  for (size_t pos = 0; pos < text.size();) {
    const AddedToken* match = nullptr;
    for (const AddedToken& t : added_)
      if (text.substr(pos, t.content.size()) == t.content && (!match || t.content.size() > match->content.size()))
        match = &t;
    if (!match) {
      plain.push_back(text[pos++]);
      continue;
    }
    if (!plain.empty()) pieces.push_back({std::move(plain), nullptr});
    plain.clear();
    pieces.push_back({match->content, match});
    pos += match->content.size();
  }
  if (!plain.empty()) pieces.push_back({std::move(plain), nullptr});

  // The AddedToken options, applied to the neighbours in order as transformers does.
  for (size_t i = 0; i < pieces.size(); ++i) {
    const AddedToken* t = pieces[i].added;
    if (!t) continue;
    Piece* left = i > 0 && !pieces[i - 1].text.empty() ? &pieces[i - 1] : nullptr;
    Piece* right = i + 1 < pieces.size() && !pieces[i + 1].text.empty() ? &pieces[i + 1] : nullptr;
    if (t->rstrip && right) right->text = strip_utf8(right->text, true, false);
    if (t->lstrip && left) left->text = strip_utf8(left->text, false, true);
    if (t->single_word && left && left->text.back() != ' ') {
      left->text += pieces[i].text;
      pieces[i] = {"", nullptr};
    } else if (t->single_word && right && right->text.front() != ' ') {
      pieces[i].text += right->text;
      pieces[i].added = nullptr;
      right->text.clear();
    }
  }

  std::vector<std::string> tokens;
  for (const Piece& piece : pieces) {
    if (piece.text.empty()) continue;
    if (piece.added) {
      tokens.push_back(piece.text);
    } else {
      tokenize_plain_text(piece.text, tokens);
    }
  }
  return tokens;
}

TokenizedPrompt ClipTokenizer::encode(std::string_view text) const {
  TokenizedPrompt out;
  out.tokens = tokenize(text);
  out.untruncated_ids.reserve(out.tokens.size() + 2);
  out.untruncated_ids.push_back(bos_id_);
  for (const std::string& token : out.tokens) out.untruncated_ids.push_back(token_id(token));
  out.untruncated_ids.push_back(eos_id_);

  const size_t max_length = size_t(model_max_length_);
  const size_t kept = std::min(out.tokens.size(), max_length - 2);
  out.input_ids.assign(out.untruncated_ids.begin(), out.untruncated_ids.begin() + 1 + ptrdiff_t(kept));
  out.input_ids.push_back(eos_id_);
  out.attention_mask.assign(out.input_ids.size(), 1);
  out.input_ids.resize(max_length, pad_id_);
  out.attention_mask.resize(max_length, 0);
  return out;
}

std::string ClipTokenizer::decode(std::span<const int64_t> ids) const {
  std::string joined;
  for (int64_t id : ids) {
    if (const AddedToken* added = added_by_id(id)) {
      joined += added->content;
    } else if (const std::string* token = bpe_.id_to_token(id)) {
      joined += *token;
    } else {
      fail("cannot decode token id ", id, ": not in the vocabulary (", bpe_.vocab_size(), " entries)");
    }
  }
  std::string text = bpe_.bytes_to_text(joined);
  replace_all(text, "</w>", " ");
  text = strip_utf8(text, true, true);
  // transformers' clean_up_tokenization (clean_up_tokenization_spaces is true in CLIP's config).
  static constexpr std::pair<std::string_view, std::string_view> kCleanups[] = {
      {" .", "."},     {" ?", "?"},   {" !", "!"},   {" ,", ","},     {" ' ", "'"},
      {" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
  for (const auto& [from, to] : kCleanups) replace_all(text, from, to);
  return text;
}

}  // namespace kakusan
