#include "pipeline/file_arguments.h"

#include <cmath>
#include <cstdlib>
#include <filesystem>

#include "core/error.h"

namespace kakusan {

std::pair<std::string, std::optional<std::string>> split_file_suffix(const std::string& argument) {
  const size_t colon = argument.rfind(':');
  if (std::filesystem::exists(argument) || colon == std::string::npos || colon == 0 || colon + 1 == argument.size())
    return {argument, std::nullopt};
  return {argument.substr(0, colon), argument.substr(colon + 1)};
}

LoadOptions::Lora parse_lora_argument(const std::string& argument, const char* flag) {
  const auto [file, scale] = split_file_suffix(argument);
  if (!scale) return {file, 1.0f};
  char* end = nullptr;
  const float value = std::strtof(scale->c_str(), &end);
  KK_CHECK(end != scale->c_str() && *end == '\0' && std::isfinite(value), flag, " ", argument, ": scale '", *scale,
           "' is not a finite number (FILE or FILE:SCALE)");
  return {file, value};
}

}  // namespace kakusan
