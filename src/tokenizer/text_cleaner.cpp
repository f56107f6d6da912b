#include "tokenizer/text_cleaner.h"

#include "tokenizer/unicode_text.h"

namespace kakusan {

namespace {

bool is_tab_or_newline(char32_t c) { return c == U'\t' || c == U'\n' || c == U'\r'; }

// BasicTokenizer._clean_text and _tokenize_chinese_chars in one pass.
std::u32string remove_controls_and_split_ideographs(std::u32string_view text) {
  std::u32string out;
  out.reserve(text.size());
  for (char32_t c : text) {
    if (c == 0 || c == 0xFFFD) continue;
    if (!is_tab_or_newline(c) && unicode::is_other(c)) continue;
    if (c == U' ' || is_tab_or_newline(c) || unicode::is_space_separator(c)) {
      out.push_back(U' ');
    } else if (is_cjk_ideograph(c)) {
      out.push_back(U' ');
      out.push_back(c);
      out.push_back(U' ');
    } else {
      out.push_back(c);
    }
  }
  return out;
}

}  // namespace

bool is_cjk_ideograph(char32_t c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
         (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

std::u32string clean_prompt_text(std::u32string_view text) {
  const std::u32string normalized = unicode::nfc(remove_controls_and_split_ideographs(text));
  std::u32string out;
  out.reserve(normalized.size());
  // Whitespace can remain only as characters Python's str.split() splits on but _clean_text kept (U+2028...).
  size_t i = 0;
  while (i < normalized.size()) {
    if (unicode::is_python_space(normalized[i])) {
      ++i;
      continue;
    }
    size_t end = i;
    while (end < normalized.size() && !unicode::is_python_space(normalized[end])) ++end;
    // Lowercased word by word, as BasicTokenizer does (it matters for the final-sigma rule).
    if (!out.empty()) out.push_back(U' ');
    out += unicode::to_lower(std::u32string_view(normalized).substr(i, end - i));
    i = end;
  }
  return out;
}

}  // namespace kakusan
