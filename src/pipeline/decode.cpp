#include "pipeline/decode.h"

#include "backend/staged_tensor.h"
#include "core/arena.h"
#include "nn/context.h"
#include "pipeline/postprocess.h"

namespace kakusan {

Tensor decode(const PhaseSetup& phase, const Autoencoder& vae, const Tensor& latents,
              const VaeMemoryOptions& memory, int64_t& arena_peak) {
  Backend& backend = phase.backend;
  StagedTensor z(backend, latents.shape());
  convert_into(latents, z.host());
  z.upload();
  backend.divide(z.on_backend(), vae.scaling_factor(), z.on_backend());
  Arena arena(backend, size_t(phase.arena_bytes));
  Context ctx{backend, arena, phase.attention};
  Tensor decoded = vae.decode(ctx, z.on_backend(), memory);
  arena_peak = int64_t(arena.peak_bytes());
  if (!decoded.device().is_host()) decoded = host_copy(backend, decoded);
  return denormalize_to_nhwc(decoded);
}

}  // namespace kakusan
