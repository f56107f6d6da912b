// Step 1, diffusers' encode_prompt: prompts (and negative prompts with CFG) to the UNet's
// encoder_hidden_states, [uncond..., cond...].
#pragma once

#include <cstdint>

#include "pipeline/prompt_encoder.h"
#include "pipeline/step_common.h"

namespace kakusan {

// Reports Phase::Encoding progress per text-encoder batch; `arena_peak` receives the arena's measured peak.
EncodedPrompts encode_prompt(const PhaseSetup& phase, const PromptEncoder& encoder, const PromptBatch& batch,
                             const ProgressCallback& progress, int64_t& arena_peak);

}  // namespace kakusan
