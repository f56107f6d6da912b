// The clean-up transformers' slow CLIPTokenizer applies when ftfy is not installed (the default for a plain
// diffusers install): BERT's BasicTokenizer with strip_accents=False and no punctuation splitting, its words
// joined by single spaces.
#pragma once

#include <string>
#include <string_view>

namespace kakusan {

// 1. drop NUL, U+FFFD and every category C* character except \t \n \r; turn \t \n \r and Zs into spaces;
// 2. surround each CJK ideograph with spaces (so each becomes a word of its own);
// 3. NFC; 4. split on whitespace (Python's str.split()); 5. lowercase each word (str.lower(); accents kept);
// 6. join with single spaces.
std::u32string clean_prompt_text(std::u32string_view text);

// The "Chinese character" ranges of BERT's BasicTokenizer (CJK Unified Ideographs and extensions,
// compatibility ideographs); Hiragana, Katakana and Hangul are not among them.
bool is_cjk_ideograph(char32_t c);

}  // namespace kakusan
