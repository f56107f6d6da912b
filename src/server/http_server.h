// `kakusan serve`: the HTTP front of ImageService on cpp-httplib. Blocks until SIGTERM or SIGINT (then drains:
// the running and queued jobs finish, new ones get 503) or until the model fails to load.
#pragma once

#include <string>

#include "server/image_service.h"

namespace kakusan::server {

struct ServeOptions {
  ServiceOptions service;
  std::string host = "127.0.0.1";
  int port = 7860;
  size_t max_body_bytes = 1 << 20;
  std::string api_key;  // empty: no authentication
};

// Exit code: 0 after a drain, 1 if the port cannot be bound, 2 if the model cannot be loaded.
int serve(const ServeOptions& options);

}  // namespace kakusan::server
