// Standard base64 (RFC 4648, with padding): images go back to clients in JSON as base64 PNGs.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace kakusan::server {

std::string base64_encode(std::string_view bytes);

// Decodes standard base64 as clients send images: whitespace (line breaks) is skipped and the final padding
// may be left out; any other character outside the alphabet, data after padding, or a lone trailing
// character makes it std::nullopt.
std::optional<std::string> base64_decode(std::string_view text);

}  // namespace kakusan::server
