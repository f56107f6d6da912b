// The memory planner of a loaded pipeline (types and the dry-pass idea in memory_plan.h): estimates a run's
// peak from the components' weight bytes and a dry pass of each phase, and with MemoryPolicy::Auto turns
// memory levers on until the run fits, or refuses saying what would fit.
#pragma once

#include <cstdint>

#include "backend/backend.h"
#include "kakusan/pipeline.h"
#include "models/autoencoder.h"
#include "models/clip_text_model.h"
#include "models/unet_2d_condition.h"
#include "pipeline/memory_plan.h"

namespace kakusan {

// Weight bytes of each component as held in memory.
struct ComponentBytes {
  int64_t text_encoder = 0, unet = 0, vae = 0;
  int64_t unet_streamed = 0;   // resident with stream_unet_weights: the largest block's mapped bytes + the rest
  int64_t unet_blockwise = 0;  // on a device with Offload::Sequential: the largest block's bytes + the rest
};

// The dtype each component's weight matrices are held in: its products take that precision (backend.h).
struct ComponentDTypes {
  DType text_encoder = DType::F32, unet = DType::F32, vae = DType::F32;
};

// The offload a run uses: stream_unet_weights asks for sequential offload, else the pipeline's.
Offload run_offload(const GenerateParams& p, Offload loaded);

class MemoryPlanner {
 public:
  // `backend` is the one the run will use: it reports its kernels' scratch (attention_scratch_bytes). The
  // models are borrowed for the planner's lifetime.
  MemoryPlanner(const Backend& backend, const ClipTextModel& text_encoder, const UNet2DConditionModel& unet,
                const Autoencoder& vae, ComponentBytes bytes, ComponentDTypes dtypes)
      : backend_(backend), text_encoder_(text_encoder), unet_(unet), vae_(vae), bytes_(bytes), dtypes_(dtypes) {}

  // The peak of a run with these levers; `latents_shape` [B, C, h, w], the UNet runs `unet_batch` images.
  // `offload` says which weights a device holds during each phase (all of them with None); on a host backend
  // every phase holds its own component's (the pages of the others are dropped), and Sequential means
  // stream_unet_weights.
  MemoryEstimate estimate(const GenerateParams& p, Offload offload, const Shape& latents_shape,
                          int64_t unet_batch) const;
  // Estimates the run (the dry pass also sizes the phases' arenas), compares the estimate with the limit and,
  // with MemoryPolicy::Auto, turns levers on in `p` and `offload` until it fits (with a warning in `result`);
  // throws Error when it does not fit and may not adapt. Fills result.memory's estimates.
  MemoryEstimate plan(GenerateParams& p, Offload& offload, const Shape& latents_shape, int64_t unet_batch,
                      GenerateResult& result) const;

 private:
  // Weight bytes held during the phase of component `own` (bytes_.text_encoder, .unet or .vae).
  int64_t phase_weights(int64_t own, Offload offload) const;

  const Backend& backend_;
  const ClipTextModel& text_encoder_;
  const UNet2DConditionModel& unet_;
  const Autoencoder& vae_;
  ComponentBytes bytes_;
  ComponentDTypes dtypes_;
};

}  // namespace kakusan
