// The "cuda" device kind, as the backend registry (registry.cpp) installs it when kakusan is built with CUDA.
// No CUDA header here: the registry is compiled without the toolkit's include path.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "backend/registry.h"

namespace kakusan {

// Makes (once per index) the CUDA backend of device N; without a usable GPU it throws one Error saying what
// was found: "no NVIDIA driver (libcuda) found", "driver found, 0 CUDA devices", "cuda:3 asked, 1 device".
BackendFactory cuda_backend_factory();

// Empty when at least one CUDA device can be used, else the reason (the text of the factory's error).
std::string cuda_unavailable_reason();

// A CUDA backend's memory, for kakusan bench: the most its allocator held since the last reset (tensors,
// arenas, scratch), and the device's used bytes now (total − free: also the CUDA context, the libraries'
// code and the pool's kept blocks). Empty for any other backend.
struct CudaMemoryFigures {
  int64_t peak_bytes = 0;
  int64_t device_used_bytes = 0;
};
std::optional<CudaMemoryFigures> cuda_memory(Backend& backend);
// Starts a new peak at what is held now; does nothing for other backends.
void cuda_reset_peak(Backend& backend);

}  // namespace kakusan
