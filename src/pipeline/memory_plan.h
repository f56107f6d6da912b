// The memory planner: before generating, the peak memory a run will need, from the weights in their dtype
// and the activation arenas of each phase, measured by a dry pass (the model code run on a backend that
// computes nothing: the arena sizes depend only on shapes and options, so the dry pass gives the real run's
// arena peaks exactly, in microseconds, without touching the memory it reserves).
//
// Only one component is resident at a time (the pipeline drops each component's pages after its phase), so
// the peak is the largest phase: its weights + its arena + what lives across phases (latents, embeddings,
// the decoded image) + an allowance for the backend's per-thread scratch and the process itself.
#pragma once

#include <cstdint>
#include <string>

#include "backend/null_backend.h"

namespace kakusan {

// Bytes of each phase (weights resident during it, its arena peak, tensors it allocates outside the arena).
struct PhaseMemory {
  int64_t weights = 0;
  int64_t arena = 0;
  int64_t other = 0;
  int64_t total() const { return weights + arena + other; }
};

struct MemoryEstimate {
  PhaseMemory encoding, denoising, decoding;
  PhaseMemory image_encoding;  // image-to-image / inpainting: the VAE encoder (zero for text-to-image)
  int64_t overhead = 0;  // process, code, allocator, per-thread kernel scratch (a fixed allowance)
  int64_t peak() const;
  // "1234 MB (UNet weights 1720 + activations 314 + ...)" — the largest phase spelled out.
  std::string describe() const;
};

// The allowance for everything the arenas do not hold: the kernels' scratch (bounded by
// cpu::ScratchLimits, about 60 MB, plus on the bf16 direct convolution the largest weight it rewrites, 59 MB in
// SD1.5), code, libraries and heap. Measured on random-weights SD1.5 (2 threads) as the peak RSS of the UNet
// phase minus its weights + arena: fp16 113 MB at 256x256 and 93-111 MB at 512x512, bf16 130-158 MB at
// 512x512; the allowance keeps a margin over that.
inline constexpr int64_t kMemoryOverheadBytes = 200'000'000;

// MemAvailable of /proc/meminfo in bytes, or 0 where it cannot be read.
int64_t available_memory_bytes();

// "1.2 GB" style sizes for messages (10^6 bytes per MB).
std::string format_megabytes(int64_t bytes);

}  // namespace kakusan
