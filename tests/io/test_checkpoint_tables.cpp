// The single-file tables against diffusers' own conversion script: every tensor name the script gives the
// kit's tiny-sd (tests/golden/formats/single_file_tiny-sd.json, made by make_goldens.py) is what expand()'s
// rules turn into the diffusers name, and (but for the VAE attention, see below) original_name() turns back.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "io/checkpoint_tables.h"

namespace kakusan {
namespace {

const ComponentLayout& layout_of(const std::string& component) {
  if (component == "unet") return ldm_unet_layout();
  if (component == "vae") return ldm_vae_layout();
  return ldm_clip_layout();
}

// The first rule that matches, as RenamedSource applies them.
std::optional<std::string> forward(const std::vector<WeightRename>& rules, const std::string& name) {
  for (const WeightRename& rule : rules)
    if (auto renamed = apply_rename(rule, name)) return renamed;
  return std::nullopt;
}

TEST(CheckpointTables, MatchDiffusersConversionScriptBothWays) {
  std::ifstream in(std::filesystem::path(KAKUSAN_SOURCE_DIR) / "tests/golden/formats/single_file_tiny-sd.json");
  const nlohmann::json map = nlohmann::json::parse(in);
  size_t checked = 0;
  for (const nlohmann::json& entry : map["tensors"]) {
    const std::string original = entry["name"], component = entry["component"];
    const std::string diffusers = entry["from"][0];
    const ComponentLayout& layout = layout_of(component);
    EXPECT_EQ(forward(expand(layout), original).value_or("<none>"), diffusers) << original;
    // The script renames the VAE attention only from diffusers' pre-0.14 names (query, key, ...): today's
    // folders come out as "mid.attn_1.to_q.weight" [C, C], which the tables read too, while convert writes
    // the original "mid.attn_1.q.weight" [C, C, 1, 1] (checked by the e2e round trips).
    if (original.find(".attn_1.to_") != std::string::npos) {
      ++checked;
      continue;
    }
    const std::optional<OriginalName> back = original_name(layout, diffusers);
    ASSERT_TRUE(back) << diffusers;
    EXPECT_EQ(back->name, original) << diffusers;
    EXPECT_EQ(back->rank == 4, original.find("mid.attn_1.") != std::string::npos && original.ends_with(".weight") &&
                                   original.find(".norm.") == std::string::npos)
        << original;
    ++checked;
  }
  EXPECT_EQ(checked, 964u);
}

TEST(CheckpointTables, OpenClipKeepsTheRequestedLayersOnly) {
  const std::vector<WeightRename> rules = expand(ldm_open_clip_layout(2));
  EXPECT_EQ(forward(rules, "cond_stage_model.model.transformer.resblocks.1.ln_1.weight").value_or(""),
            "text_model.encoder.layers.1.layer_norm1.weight");
  EXPECT_EQ(forward(rules, "cond_stage_model.model.transformer.resblocks.1.attn.in_proj_weight").value_or(""),
            "text_model.encoder.layers.1.self_attn.in_proj_weight");
  EXPECT_FALSE(forward(rules, "cond_stage_model.model.transformer.resblocks.2.ln_1.weight"));  // the 24th of 24
  EXPECT_FALSE(forward(rules, "cond_stage_model.model.text_projection"));
  EXPECT_FALSE(forward(rules, "model_ema.diffusion_modelinput_blocks00weight"));
}

}  // namespace
}  // namespace kakusan
