#include "pipeline/encode_prompt.h"

#include "core/arena.h"
#include "nn/context.h"

namespace kakusan {

EncodedPrompts encode_prompt(const PhaseSetup& phase, const PromptEncoder& encoder, const PromptBatch& batch,
                             const ProgressCallback& progress, int64_t& arena_peak) {
  const int total = PromptEncoder::num_batches(batch);
  int encoded = 0;
  report_progress(progress, Phase::Encoding, 0, total);
  Arena arena(phase.backend, size_t(phase.arena_bytes));
  Context ctx{phase.backend, arena, phase.attention};
  EncodedPrompts prompts =
      encoder.encode(ctx, batch, [&] { report_progress(progress, Phase::Encoding, ++encoded, total); });
  arena_peak = int64_t(arena.peak_bytes());
  return prompts;
}

}  // namespace kakusan
