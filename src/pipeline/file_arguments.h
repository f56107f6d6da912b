// The FILE[:SUFFIX] arguments of the front ends (`--lora FILE[:SCALE]`, `--embedding FILE[:TOKEN]`), shared by
// `kakusan generate` and `kakusan serve`.
#pragma once

#include <optional>
#include <string>
#include <utility>

#include "kakusan/pipeline.h"

namespace kakusan {

// FILE or FILE:SUFFIX: an existing FILE as given wins, else the part after the last ':' is the suffix (a token
// such as "cat</w>" may hold '/').
std::pair<std::string, std::optional<std::string>> split_file_suffix(const std::string& argument);

// FILE[:SCALE] (scale 1 when absent); throws Error naming `flag` when SCALE is not a finite number.
LoadOptions::Lora parse_lora_argument(const std::string& argument, const char* flag = "--lora");

}  // namespace kakusan
