// What a forward pass needs besides the (immutable) model: the backend that runs the ops and the arena
// that activations come from.
#pragma once

#include "backend/backend.h"
#include "core/arena.h"

namespace kakusan {

struct Context {
  Backend& backend;
  Arena& arena;
  AttentionParams attention;  // strategy and slice size; heads/scale/causal are set per layer
};

}  // namespace kakusan
