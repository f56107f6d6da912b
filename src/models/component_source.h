// A model component ready for the one weight walk: its config and where its weights come from (a diffusers
// folder's files, a single file behind rename tables, either of them under a LoRA overlay).
#pragma once

#include <memory>

#include "io/json_config.h"
#include "io/weight_source.h"

namespace kakusan {

struct ComponentSource {
  JsonConfig config;
  std::shared_ptr<const WeightSource> weights;
};

}  // namespace kakusan
