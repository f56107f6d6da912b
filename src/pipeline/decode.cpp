#include "pipeline/decode.h"

#include "core/arena.h"
#include "nn/context.h"
#include "pipeline/postprocess.h"

namespace kakusan {

Tensor decode(const PhaseSetup& phase, const Autoencoder& vae, const Tensor& latents,
              const VaeMemoryOptions& memory, int64_t& arena_peak) {
  Tensor scaled = latents.clone();
  const float scaling_factor = vae.scaling_factor();
  for (int64_t i = 0; i < scaled.numel(); ++i) scaled.f32()[i] /= scaling_factor;
  Arena arena(size_t(phase.arena_bytes));
  Context ctx{phase.backend, arena, phase.attention};
  const Tensor decoded = vae.decode(ctx, scaled, memory);
  arena_peak = int64_t(arena.peak_bytes());
  return denormalize_to_nhwc(decoded);
}

}  // namespace kakusan
