#include "tokenizer/clip_bpe.h"

#include <climits>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "io/json_config.h"
#include "tokenizer/unicode_text.h"

namespace kakusan {

namespace {

// CLIP's merges.txt holds 49152 - 256 - 2 merges after its "#version" line; only those are used.
constexpr size_t kMaxMerges = 49152 - 256 - 2;
constexpr std::string_view kEndOfWord = "</w>";
// Longest word (bytes) BPE is run on. Each merge step rescans the word, so the cost grows with its length
// squared: 10 kB takes ~0.3 s, 30 kB ~1.6 s and 1 MB would take most of an hour. No real prompt has a word
// near this long (words are runs of letters or single digits/symbols; only 77 tokens reach the model).
constexpr size_t kMaxWordBytes = 10'000;

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  KK_CHECK(in, path.string(), ": cannot open (the tokenizer folder needs vocab.json and merges.txt)");
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves, the other 68 bytes are given the
// code points 256, 257, ... in byte order, so no byte maps to whitespace or a control character.
std::vector<char32_t> byte_alphabet() {
  std::vector<char32_t> chars(256);
  char32_t next = 256;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    chars[size_t(b)] = printable ? char32_t(b) : next++;
  }
  return chars;
}

// At most 40 bytes of `text` for an error message (a vocabulary entry may be megabytes long).
std::string short_text(const std::string& text) {
  if (text.size() <= 40) return text;
  size_t cut = 40;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;  // not inside a character
  return text.substr(0, cut) + "...";
}

// A bad value in a few words: numbers as written, anything else by its type.
std::string describe(const nlohmann::json& value) {
  if (value.is_number()) return value.dump();
  if (value.is_string()) return str_cat("the string \"", short_text(value.get<std::string>()), "\"");
  return std::string("a JSON ") + value.type_name();
}

bool is_ascii_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

std::vector<std::string_view> split_whitespace(std::string_view line) {
  std::vector<std::string_view> parts;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && is_ascii_space(line[i])) ++i;
    size_t end = i;
    while (end < line.size() && !is_ascii_space(line[end])) ++end;
    if (end > i) parts.push_back(line.substr(i, end - i));
    i = end;
  }
  return parts;
}

}  // namespace

ClipBpe ClipBpe::load(const std::filesystem::path& vocab_json, const std::filesystem::path& merges_txt) {
  ClipBpe bpe;
  for (char32_t c : byte_alphabet()) bpe.byte_chars_.push_back(unicode::encode_utf8(std::u32string(1, c)));

  // Through JsonConfig for its nesting limit: nlohmann recurses once per level when it copies or prints.
  const JsonConfig vocab_file = JsonConfig::parse(read_file(vocab_json), vocab_json.string() + " {token: id}");
  for (const auto& [token, id] : vocab_file.json().items()) {
    KK_CHECK(id.is_number_integer() && id.get<int64_t>() >= 0 && id.get<int64_t>() < INT32_MAX, vocab_json.string(),
             ": token \"", short_text(token), "\" has id ", describe(id), ", expected a non-negative integer");
    bpe.encoder_[token] = id.get<int64_t>();
    bpe.decoder_[id.get<int64_t>()] = token;
  }
  KK_CHECK(!bpe.encoder_.empty(), vocab_json.string(), ": the vocabulary is empty");

  // As transformers reads it: strip the file, split into lines, skip the "#version" line, keep kMaxMerges.
  const std::string merges = read_file(merges_txt);
  size_t begin = 0, end = merges.size();
  while (begin < end && is_ascii_space(merges[begin])) ++begin;
  while (end > begin && is_ascii_space(merges[end - 1])) --end;
  const std::string_view body = std::string_view(merges).substr(begin, end - begin);
  size_t line_start = 0;
  for (size_t line_index = 0; line_start <= body.size(); ++line_index) {
    size_t line_end = body.find('\n', line_start);
    if (line_end == std::string_view::npos) line_end = body.size();
    const std::string_view line = body.substr(line_start, line_end - line_start);
    line_start = line_end + 1;
    if (line_index == 0) continue;
    if (line_index > kMaxMerges) break;
    const std::vector<std::string_view> pair = split_whitespace(line);
    KK_CHECK(pair.size() == 2, merges_txt.string(), ": line ", line_index + 1, " is not a pair of symbols: \"",
             std::string(line), "\"");
    // A later duplicate overrides the rank of an earlier one (as a Python dict built from the list would).
    bpe.merge_ranks_[std::string(pair[0]) + ' ' + std::string(pair[1])] = int(line_index - 1);
  }
  KK_CHECK(!bpe.merge_ranks_.empty(), merges_txt.string(), ": no merges found");
  return bpe;
}

void ClipBpe::add_unsplittable(const std::string& word) {
  std::lock_guard<std::mutex> lock(cache_->mutex);
  cache_->words[word] = {word};
}

std::optional<int64_t> ClipBpe::token_to_id(const std::string& token) const {
  const auto it = encoder_.find(token);
  if (it == encoder_.end()) return std::nullopt;
  return it->second;
}

const std::string* ClipBpe::id_to_token(int64_t id) const {
  const auto it = decoder_.find(id);
  return it == decoder_.end() ? nullptr : &it->second;
}

std::string ClipBpe::to_byte_alphabet(const std::string& word) const {
  std::string encoded;
  encoded.reserve(word.size() * 2);
  for (unsigned char b : word) encoded += byte_chars_[b];
  return encoded;
}

std::vector<std::string> ClipBpe::merge(const std::string& encoded) const {
  // One symbol per character of the byte-level word; the last one carries the end-of-word mark.
  std::vector<std::string> symbols;
  for (char32_t c : unicode::decode_utf8(encoded, "byte-level word"))
    symbols.push_back(unicode::encode_utf8(std::u32string(1, c)));
  if (symbols.empty()) return symbols;
  symbols.back() += kEndOfWord;

  std::string key;
  while (symbols.size() > 1) {
    // The adjacent pair with the lowest rank is merged everywhere it occurs, left to right.
    int best_rank = INT_MAX;
    size_t best = 0;
    for (size_t i = 0; i + 1 < symbols.size(); ++i) {
      key.assign(symbols[i]).push_back(' ');
      key += symbols[i + 1];
      const auto it = merge_ranks_.find(key);
      if (it != merge_ranks_.end() && it->second < best_rank) best_rank = it->second, best = i;
    }
    if (best_rank == INT_MAX) break;
    const std::string first = symbols[best], second = symbols[best + 1];
    std::vector<std::string> merged;
    merged.reserve(symbols.size());
    for (size_t i = 0; i < symbols.size();) {
      if (i + 1 < symbols.size() && symbols[i] == first && symbols[i + 1] == second) {
        merged.push_back(first + second);
        i += 2;
      } else {
        merged.push_back(std::move(symbols[i]));
        i += 1;
      }
    }
    symbols = std::move(merged);
  }
  return symbols;
}

std::vector<std::string> ClipBpe::encode_word(const std::string& word) const {
  {
    std::lock_guard<std::mutex> lock(cache_->mutex);
    if (const auto it = cache_->words.find(word); it != cache_->words.end()) return it->second;
  }
  KK_CHECK(word.size() <= kMaxWordBytes, "prompt: a single word of ", word.size(), " bytes (\"",
           short_text(word), "\") is longer than the ", kMaxWordBytes,
           " bytes the tokenizer accepts (split it with spaces)");
  std::vector<std::string> symbols = merge(to_byte_alphabet(word));
  std::lock_guard<std::mutex> lock(cache_->mutex);
  cache_->words.emplace(word, symbols);
  return symbols;
}

std::string ClipBpe::bytes_to_text(std::string_view tokens_joined) const {
  static const std::unordered_map<char32_t, unsigned char> byte_of = [] {
    std::unordered_map<char32_t, unsigned char> map;
    const std::vector<char32_t> chars = byte_alphabet();
    for (size_t b = 0; b < chars.size(); ++b) map[chars[b]] = static_cast<unsigned char>(b);
    return map;
  }();
  std::string bytes;
  for (char32_t c : unicode::decode_utf8_lossy(tokens_joined)) {
    if (const auto it = byte_of.find(c); it != byte_of.end()) {
      bytes.push_back(char(it->second));
    } else {
      unicode::append_utf8(bytes, c);
    }
  }
  return unicode::encode_utf8(unicode::decode_utf8_lossy(bytes));
}

}  // namespace kakusan
