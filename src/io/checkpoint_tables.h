// The original (CompVis / LDM) layout of a Stable Diffusion 1.x / 2.x single-file checkpoint, as data: which
// block of the original names becomes which diffusers block, and how the layers inside a block are renamed
// (diffusers' single_file_utils and scripts/convert_diffusers_to_original_stable_diffusion.py describe the
// same correspondence). The layout is the one every SD 1.x / 2.x file shares: four down / up blocks, two
// resnets a down block (three an up block), attention in all but the last down and the first up block.
//
// expand() turns blocks x layers into the rules a RenamedSource reads (whole prefixes, one trailing '*'), so
// the mapping is also invertible (`kakusan convert` writes single files with the same tables).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "io/weight_rename.h"

namespace kakusan {

// One rename inside a block: `original` / `diffusers` are name tails ("in_layers.0.*" / "norm1.*", or whole
// tails "q.weight" / "to_q.weight"); `rank` is the diffusers rank when it differs (0: same shape) and
// `original_rank` the rank the original layout stores it with.
struct LayerRename {
  const char* original;
  const char* diffusers;
  int rank = 0;
  int original_rank = 0;
};

// A block: the original name prefix, the diffusers one, and the layer renames inside it (none: same tails).
struct BlockRename {
  std::string original;
  std::string diffusers;
  const std::vector<LayerRename>* layers = nullptr;
};

// A checkpoint component: its blocks, and whether names under `prefix` that no block claims are kept with the
// prefix stripped (then reported by the loader as unexpected unless diffusers has them under the same name).
struct ComponentLayout {
  std::string prefix;  // "model.diffusion_model."
  std::vector<BlockRename> blocks;
  bool keep_unclaimed = true;
};

const ComponentLayout& ldm_unet_layout();
const ComponentLayout& ldm_vae_layout();
const ComponentLayout& ldm_clip_layout();  // SD 1.x: transformers' CLIPTextModel under cond_stage_model.transformer.
// SD 2.x: OpenCLIP under cond_stage_model.model., its first `num_layers` residual blocks (diffusers' 23-layer
// text encoder of the 24 OpenCLIP has; the rest, text_projection and logit_scale are left out). The attention's
// fused projection comes out as "...self_attn.in_proj_weight" / "_bias", split by open_clip_splits().
ComponentLayout ldm_open_clip_layout(int num_layers);
inline constexpr const char* kOpenClipFusedWeight = ".self_attn.in_proj_weight";
inline constexpr const char* kOpenClipFusedBias = ".self_attn.in_proj_bias";

// The rules a RenamedSource (Unmatched::Drop) reads: whole-name prefixes with one trailing '*', first match
// wins, the component prefix included.
std::vector<WeightRename> expand(const ComponentLayout& layout);

// The inverse: the original name of a diffusers name and the rank it is stored with there (0: as in
// diffusers); nullopt if the layout has no place for it.
struct OriginalName {
  std::string name;
  int rank = 0;
};
std::optional<OriginalName> original_name(const ComponentLayout& layout, const std::string& diffusers_name);

}  // namespace kakusan
