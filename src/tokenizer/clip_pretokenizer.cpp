#include "tokenizer/clip_pretokenizer.h"

#include <array>

#include "tokenizer/unicode_text.h"

namespace kakusan {

namespace {

// Simple case folding, restricted to what can still differ after str.lower(): the long s folds to 's'
// (the pattern is compiled with IGNORECASE, so "'ſ" is a contraction like "'s").
char32_t fold(char32_t c) {
  if (c == 0x017F) return U's';
  if (c >= U'A' && c <= U'Z') return c - U'A' + U'a';
  return c;
}

// Length of `literal` if text[pos...] starts with it (case-insensitively), else 0.
size_t match_at(std::u32string_view text, size_t pos, std::u32string_view literal) {
  if (text.size() - pos < literal.size()) return 0;
  for (size_t i = 0; i < literal.size(); ++i)
    if (fold(text[pos + i]) != literal[i]) return 0;
  return literal.size();
}

bool is_space(char32_t c) { return unicode::is_python_space(c); }

// The alternatives in the pattern's order; the first that matches at `pos` wins (as in a backtracking regex).
size_t match_length(std::u32string_view text, size_t pos) {
  static constexpr std::array<std::u32string_view, 9> kLiterals = {
      U"<|startoftext|>", U"<|endoftext|>", U"'s", U"'t", U"'re", U"'ve", U"'m", U"'ll", U"'d"};
  for (std::u32string_view literal : kLiterals)
    if (size_t n = match_at(text, pos, literal)) return n;
  const char32_t c = text[pos];
  size_t end = pos + 1;
  if (unicode::is_letter(c)) {
    while (end < text.size() && unicode::is_letter(text[end])) ++end;
    return end - pos;
  }
  if (unicode::is_number(c)) return 1;
  if (is_space(c)) return 0;
  auto is_other_symbol = [](char32_t x) { return !is_space(x) && !unicode::is_letter(x) && !unicode::is_number(x); };
  while (end < text.size() && is_other_symbol(text[end])) ++end;
  return end - pos;
}

}  // namespace

std::vector<std::string> split_clip_words(std::u32string_view text) {
  std::vector<std::string> words;
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t n = match_length(text, pos);
    if (n == 0) {
      ++pos;
      continue;
    }
    words.push_back(unicode::encode_utf8(text.substr(pos, n)));
    pos += n;
  }
  return words;
}

}  // namespace kakusan
