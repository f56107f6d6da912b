// What a forward pass needs besides the (immutable) model: the backend that runs the ops and the arena
// that activations come from.
#pragma once

#include <functional>

#include "backend/backend.h"
#include "core/arena.h"

namespace kakusan {

struct Context {
  Backend& backend;
  Arena& arena;
  AttentionParams attention;  // strategy and slice size; heads/scale/causal are set per layer
  // Called, when set, after each top-level block of a model (the UNet's down, mid and up blocks): the
  // pipeline's low-memory mode drops the weights' pages there, so one block's weights are resident at a time.
  std::function<void()> after_block = {};
  // The dtype activations are computed in (weights keep theirs; norm and softmax statistics stay f32: the
  // contract in backend/backend.h). Only F32 is implemented so far.
  DType compute_dtype = DType::F32;
};

// A model's entry point calls this first: a compute dtype the backend cannot run is a clear error, not a
// wrong result. `model` names the caller in the message.
inline void check_compute_dtype(const Context& ctx, const char* model) {
  KK_CHECK(ctx.backend.supports_compute_dtype(ctx.compute_dtype), model, ": the ", ctx.backend.name(),
           " backend cannot compute in ", dtype_name(ctx.compute_dtype));
}

}  // namespace kakusan
