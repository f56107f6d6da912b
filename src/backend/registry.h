// Backends by device name, as LoadOptions::device and the CLI's --device spell them: "cpu" (the fast CPU
// backend, the default) and "reference" (plain loops) are built in; a device backend (CUDA) registers itself
// when it is compiled in, and tests register their own (the separate-heap backend).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "backend/backend.h"

namespace kakusan {

// Makes (or returns) the backend for device `index` of its kind ("cuda:1" -> index 1). Backends live until
// the process ends: pipelines hold references to them.
using BackendFactory = std::function<Backend&(int index)>;

// Registers `kind` (letters, digits, '-' and '_'); registering a kind again replaces its factory.
void register_backend(const std::string& kind, BackendFactory factory);

// The backend for "kind" or "kind:N". An unknown kind, a malformed index or a kind this build lacks
// ("cuda" without the CUDA backend) throws Error saying which devices there are.
Backend& backend_for_device(const std::string& spec);

// The registered kinds, sorted ("cpu", "reference", ...).
std::vector<std::string> backend_kinds();

}  // namespace kakusan
