// The "cuda" device kind, as the backend registry (registry.cpp) installs it when kakusan is built with CUDA.
// No CUDA header here: the registry is compiled without the toolkit's include path.
#pragma once

#include <string>

#include "backend/registry.h"

namespace kakusan {

// Makes (once per index) the CUDA backend of device N; without a usable GPU it throws one Error saying what
// was found: "no NVIDIA driver (libcuda) found", "driver found, 0 CUDA devices", "cuda:3 asked, 1 device".
BackendFactory cuda_backend_factory();

// Empty when at least one CUDA device can be used, else the reason (the text of the factory's error).
std::string cuda_unavailable_reason();

}  // namespace kakusan
