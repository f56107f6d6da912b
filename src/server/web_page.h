// The page at GET /: a plain HTML form over /sdapi/v1/txt2img with a progress bar, for trying the server in a
// browser. No external resources; everything it shows comes from the API.
#pragma once

#include <string>

namespace kakusan::server {

const std::string& web_page();

}  // namespace kakusan::server
