// Checks and readers that the UNet and VAE config parsers share: both follow diffusers' block-list layout
// (down/up block types beside block_out_channels) and accept sample_size as an int or a list.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/json_config.h"

namespace kakusan::config_checks {

// Upper bounds far above any real checkpoint (SD 1.x-XL use <= 2560 channels, 10 transformer layers, 49408
// tokens). Models are built from config.json before any weight is read, so without them a 200-byte config
// could ask for billions of modules or tensors of exabytes and die by the OOM killer instead of an Error.
inline constexpr int64_t kMaxChannels = 65536;
inline constexpr int64_t kMaxBlocks = 16;           // entries of block_out_channels
inline constexpr int64_t kMaxLayersPerBlock = 64;   // layers_per_block, transformer_layers_per_block
inline constexpr int64_t kMaxTotalLayers = 1024;    // all resnet or transformer layers of one model
inline constexpr int64_t kMaxSampleSize = 16384;  // times a VAE factor of up to 2^15, still fits an int
inline constexpr int64_t kMaxKernel = 31;

// `value` of `key` lies in [min, max]; checked before the value is used (as a divisor, a count, a size).
inline void in_range(const std::string& src, const std::string& key, int64_t value, int64_t min, int64_t max) {
  KK_CHECK(value >= min && value <= max, src, ": \"", key, "\" = ", value, " is out of range (expected ", min,
           " to ", max, ")");
}

// sample_size as an int, or the first entry of a [height, width] list.
inline int sample_size(const JsonConfig& json, int fallback) {
  const bool is_list = json.has("sample_size") && json.json()["sample_size"].is_array();
  const std::vector<int> sizes = is_list ? json.get_list<int>("sample_size", {}) : std::vector<int>{};
  KK_CHECK(!is_list || !sizes.empty(), json.source(), ": \"sample_size\" is an empty list");
  const int size = is_list ? sizes[0] : json.get<int>("sample_size", fallback);
  in_range(json.source(), "sample_size", size, 1, kMaxSampleSize);
  return size;
}

// Every channel count of block_out_channels in [1, kMaxChannels] and divisible by norm_num_groups, which is
// checked first (it is the divisor).
inline void block_channels(const std::string& src, const std::vector<int>& block_out_channels, int norm_num_groups) {
  in_range(src, "norm_num_groups", norm_num_groups, 1, kMaxChannels);
  for (size_t i = 0; i < block_out_channels.size(); ++i) {
    const int ch = block_out_channels[i];
    in_range(src, str_cat("block_out_channels[", i, "]"), ch, 1, kMaxChannels);
    KK_CHECK(ch % norm_num_groups == 0, src, ": block_out_channels[", i, "] = ", ch,
             " is not divisible by \"norm_num_groups\" = ", norm_num_groups);
  }
}

// One down and one up block type per entry of block_out_channels, which is not empty.
inline void block_counts(const std::string& src, size_t n, const std::vector<std::string>& down_block_types,
                         const std::vector<std::string>& up_block_types) {
  KK_CHECK(n >= 1, src, ": \"block_out_channels\" is empty");
  KK_CHECK(n <= size_t(kMaxBlocks), src, ": \"block_out_channels\" has ", n, " entries (at most ", kMaxBlocks,
           " supported)");
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
