// Checks and readers that the UNet and VAE config parsers share: both follow diffusers' block-list layout
// (down/up block types beside block_out_channels) and accept sample_size as an int or a list.
#pragma once

#include <initializer_list>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/json_config.h"

namespace kakusan::config_checks {

// sample_size as an int, or the first entry of a [height, width] list.
inline int sample_size(const JsonConfig& json, int fallback) {
  if (json.has("sample_size") && json.json()["sample_size"].is_array())
    return json.get_list<int>("sample_size", {fallback}).at(0);
  return json.get<int>("sample_size", fallback);
}

// One down and one up block type per entry of block_out_channels, which is not empty.
inline void block_counts(const std::string& src, size_t n, const std::vector<std::string>& down_block_types,
                         const std::vector<std::string>& up_block_types) {
  KK_CHECK(n >= 1, src, ": \"block_out_channels\" is empty");
  KK_CHECK(down_block_types.size() == n, src, ": \"down_block_types\" has ", down_block_types.size(),
           " entries but \"block_out_channels\" has ", n);
  KK_CHECK(up_block_types.size() == n, src, ": \"up_block_types\" has ", up_block_types.size(),
           " entries but \"block_out_channels\" has ", n);
}

// Every entry of the list `key` is one of `supported` (the error names the entry and lists them).
inline void block_types(const std::string& src, const char* key, const std::vector<std::string>& types,
                        std::initializer_list<const char*> supported) {
  for (const std::string& type : types) {
    bool known = false;
    std::string list;
    for (const char* s : supported) {
      known = known || type == s;
      list += list.empty() ? s : std::string(", ") + s;
    }
    KK_CHECK(known, src, ": \"", key, "\" entry \"", type, "\" is not supported (", list, ")");
  }
}

}  // namespace kakusan::config_checks
