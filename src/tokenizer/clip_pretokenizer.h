// CLIP's pre-tokenisation: the regular expression
//   <\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
// (case-insensitive) applied with findall semantics to cleaned text, written out as a scanner.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace kakusan {

// The matches, left to right, as UTF-8. Whitespace separates matches and is never part of one.
std::vector<std::string> split_clip_words(std::u32string_view text);

}  // namespace kakusan
