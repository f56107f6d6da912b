// The Unicode facts the CLIP tokenizer needs, answered by ICU the way Python 3 answers them
// (unicodedata.category, str.isspace, str.lower, unicodedata.normalize), so that text is cleaned exactly as
// transformers' slow tokenizer cleans it.
#pragma once

#include <string>
#include <string_view>

namespace kakusan::unicode {

// Strict UTF-8 -> code points; throws Error naming `what` on ill-formed input.
std::u32string decode_utf8(std::string_view bytes, std::string_view what);
// Like Python's bytes.decode("utf-8", errors="replace"): each maximal ill-formed subsequence becomes U+FFFD.
std::u32string decode_utf8_lossy(std::string_view bytes);
std::string encode_utf8(std::u32string_view text);
void append_utf8(std::string& out, char32_t c);

// General category L* (what \p{L} matches).
bool is_letter(char32_t c);
// General category N* (what \p{N} matches).
bool is_number(char32_t c);
// Any general category C* (control, format, surrogate, private use, unassigned), counting characters
// assigned after Unicode 14.0 (the version of the reference Python) as unassigned.
bool is_other(char32_t c);
// General category Zs.
bool is_space_separator(char32_t c);
// Python's str.isspace(): bidirectional class WS, B or S, or category Zs.
bool is_python_space(char32_t c);

// Unicode normalisation form C.
std::u32string nfc(std::u32string_view text);
// Python's str.lower(): full (one-to-many) lowercase mapping, language-neutral, with the final-sigma rule
// (e.g. "İ" -> "i̇", two code points; never the Turkish dotless mapping).
std::u32string to_lower(std::u32string_view text);

}  // namespace kakusan::unicode
