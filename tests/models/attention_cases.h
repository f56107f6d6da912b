// The attention strategies every model golden test runs through, and the Context that selects one, shared
// by the text encoder, UNet and VAE tests so that each covers the same set.
#pragma once

#include "nn/context.h"

namespace kakusan::testing {

struct AttentionCase {
  const char* name;
  AttentionStrategy strategy;
  int slice_size;
};
inline constexpr AttentionCase kAttentionCases[] = {
    {"full", AttentionStrategy::Full, 0},
    {"sliced", AttentionStrategy::Sliced, 1},
    {"flash", AttentionStrategy::Flash, 0},
    {"auto", AttentionStrategy::Auto, 0},
};

inline Context attention_context(Backend& backend, Arena& arena, const AttentionCase& c) {
  AttentionParams attention;
  attention.strategy = c.strategy;
  attention.slice_size = c.slice_size;
  return Context{backend, arena, attention};
}

}  // namespace kakusan::testing
