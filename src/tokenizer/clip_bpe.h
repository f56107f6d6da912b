// CLIP's byte-level BPE model: vocab.json (token -> id) and merges.txt (ranked symbol pairs) as written for
// transformers' CLIPTokenizer. Words are UTF-8 bytes mapped to printable characters (GPT-2's
// bytes_to_unicode), split into symbols, the last marked with "</w>", and merged by rank.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace kakusan {

class ClipBpe {
 public:
  // Throws Error naming the file on a missing or malformed vocabulary / merges file.
  static ClipBpe load(const std::filesystem::path& vocab_json, const std::filesystem::path& merges_txt);

  // The BPE tokens of one pre-tokenised word (UTF-8), as vocabulary strings. Results are cached, so a
  // repeated word costs one lookup. Safe to call from several threads.
  std::vector<std::string> encode_word(const std::string& word) const;

  std::optional<int64_t> token_to_id(const std::string& token) const;
  // nullptr if `id` has no entry.
  const std::string* id_to_token(int64_t id) const;
  int64_t vocab_size() const { return int64_t(encoder_.size()); }
  size_t merge_count() const { return merge_ranks_.size(); }

  // Maps byte-level characters back to bytes and decodes them as UTF-8 (ill-formed sequences become U+FFFD,
  // as Python's errors="replace"). Characters outside the byte alphabet are kept as they are.
  std::string bytes_to_text(std::string_view tokens_joined) const;

  // A word that BPE must leave whole (e.g. "<|startoftext|>"); it maps to itself, without "</w>".
  void add_unsplittable(const std::string& word);

 private:
  std::string to_byte_alphabet(const std::string& word) const;
  std::vector<std::string> merge(const std::string& encoded) const;

  std::unordered_map<std::string, int64_t> encoder_;
  std::unordered_map<int64_t, std::string> decoder_;  // id -> token (ids need not be dense)
  std::unordered_map<std::string, int> merge_ranks_;  // "first second" -> rank
  std::vector<std::string> byte_chars_;               // byte -> its character, as UTF-8

  struct Cache {
    std::mutex mutex;
    std::unordered_map<std::string, std::vector<std::string>> words;
  };
  std::unique_ptr<Cache> cache_ = std::make_unique<Cache>();
};

}  // namespace kakusan
