// Standard base64 (RFC 4648, with padding): images go back to clients in JSON as base64 PNGs.
#pragma once

#include <string>
#include <string_view>

namespace kakusan::server {

std::string base64_encode(std::string_view bytes);

}  // namespace kakusan::server
