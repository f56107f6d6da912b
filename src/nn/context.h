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
};

}  // namespace kakusan
