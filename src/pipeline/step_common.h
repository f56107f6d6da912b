// What the pipeline's steps (encode_prompt, prepare_latents, denoise, decode) share: where a phase runs,
// progress reports and the named-tensor hook.
#pragma once

#include <cstdint>
#include <functional>
#include <string_view>
#include <vector>

#include "backend/backend.h"
#include "core/tensor.h"
#include "kakusan/pipeline.h"

namespace kakusan {

// The backend a phase runs on, its attention kernel and the arena size its dry pass measured (one block,
// reserved when the phase starts and freed when it ends).
struct PhaseSetup {
  Backend& backend;
  AttentionParams attention;
  int64_t arena_bytes = 0;
};

// Called with intermediate tensors by name (GenerateParams::inspect, already bound); may be empty.
using InspectTensor = std::function<void(std::string_view name, const TensorView& tensor)>;

inline void report_progress(const ProgressCallback& progress, Phase phase, int done, int total,
                            std::string_view item = {}) {
  if (progress) progress(Progress{phase, done, total, item});
}

inline std::vector<int64_t> dims_of(const Shape& shape) { return std::vector<int64_t>(shape.begin(), shape.end()); }

}  // namespace kakusan
