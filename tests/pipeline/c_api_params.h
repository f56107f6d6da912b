// The C API tests' common request: one prompt, one seed, `steps` steps, everything else kakusan's defaults.
#pragma once

#include <cstdint>

#include "kakusan/kakusan.h"

namespace kakusan::testing {

// `prompt` and `seed` point at one element each and must outlive the params (the C API keeps pointers).
inline kakusan_params one_image_params(const char* const* prompt, const uint64_t* seed, int steps) {
  kakusan_params p = kakusan_default_params();
  p.prompts = prompt;
  p.n_prompts = 1;
  p.seeds = seed;
  p.n_seeds = 1;
  p.num_inference_steps = steps;
  return p;
}

}  // namespace kakusan::testing
